/**
 * Fetching `http(s):` media for the API without letting a request reach this machine's network
 * (SSRF). Every hop is vetted the same way:
 *
 *   URL ─► scheme http/https ─► host: IP literal, or node:dns lookup (all addresses)
 *       ─► each address: special range (private, loopback, link-local, CGNAT, …)? refuse,
 *          unless the host or a CIDR is allow-listed
 *       ─► connect to the vetted address itself (the socket's lookup returns it: no second DNS
 *          answer can switch it, so rebinding fails) ─► 3xx: vet the next hop (at most 3)
 *       ─► 2xx: content-type allowed? ─► stream the body, abort past maxBytes
 *
 * One timer covers the whole exchange (lookups, redirects, body). Failures are typed
 * (`MediaFetchError` subclasses) and carry the API code they answer with (`apiCode`).
 */
import { lookup as dnsLookup } from 'node:dns/promises';
import http from 'node:http';
import https from 'node:https';
import type { LookupFunction } from 'node:net';
import { ApiError, ApiErrorType } from '../../shared/api/errors.ts';
import { VlmeshError } from '../../shared/errors.ts';

// ───────────────────────────── errors ─────────────────────────────

/** A remote media fetch failed; `apiCode` is the OpenAI error code it answers with (400). */
export class MediaFetchError extends VlmeshError {
  readonly apiCode: string;
  readonly url: string;
  constructor(code: string, apiCode: string, url: string, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.apiCode = apiCode;
    this.url = url;
  }
}

/** The URL's scheme, host or an address it resolves to is not allowed. */
export class MediaFetchForbiddenError extends MediaFetchError {
  constructor(url: string, message: string) {
    super('MEDIA_FETCH_FORBIDDEN', 'media_fetch_forbidden', url, message);
  }
}

/** The body is larger than the limit (declared or streamed). */
export class MediaTooLargeError extends MediaFetchError {
  readonly maxBytes: number;
  constructor(url: string, maxBytes: number) {
    super('MEDIA_TOO_LARGE', 'media_too_large', url, `${url}: the media is larger than the limit of ${maxBytes} bytes`);
    this.maxBytes = maxBytes;
  }
}

/** The whole fetch took longer than its timeout. */
export class MediaTimeoutError extends MediaFetchError {
  constructor(url: string, timeoutMs: number) {
    super('MEDIA_TIMEOUT', 'media_timeout', url, `${url}: fetching the media took longer than ${timeoutMs / 1000} s`);
  }
}

/** The server answered with a content-type outside the allowed list. */
export class MediaTypeError extends MediaFetchError {
  readonly contentType: string;
  constructor(url: string, contentType: string, allowed: readonly string[]) {
    super(
      'MEDIA_UNSUPPORTED_TYPE',
      'unsupported_media_type',
      url,
      `${url}: unsupported content-type '${contentType || '(none)'}': expected ${allowed.join(' or ')}`,
    );
    this.contentType = contentType;
  }
}

/** Network failure, bad status, too many redirects, malformed URL. */
export class MediaFetchFailedError extends MediaFetchError {
  constructor(url: string, message: string, options?: { cause?: unknown }) {
    super('MEDIA_FETCH_FAILED', 'media_fetch_failed', url, message, options);
  }
}

/** The 400 a media fetch failure answers with; `param` names the request field. */
export function mediaFetchApiError(e: MediaFetchError, param: string | null): ApiError {
  return new ApiError(400, ApiErrorType.InvalidRequest, e.apiCode, e.message, param);
}

// ───────────────────────────── addresses ─────────────────────────────

/** A parsed IP address: 4 or 16 bytes, network order. */
export interface IpAddress {
  family: 4 | 6;
  bytes: Uint8Array;
}

/**
 * IPv4 in every form `inet_aton` (and the WHATWG URL parser) accepts: 1 to 4 parts, each decimal,
 * octal (`0` prefix) or hex (`0x`), the last part filling the remaining bytes (`127.1`,
 * `0x7f000001`, `2130706433`, `0177.0.0.1`). Null when not such a literal.
 */
export function parseIPv4(text: string): IpAddress | null {
  const parts = text.split('.');
  if (parts.length > 1 && parts.at(-1) === '') parts.pop(); // a trailing dot, as URL hosts allow
  if (parts.length < 1 || parts.length > 4) return null;
  const nums: number[] = [];
  for (const p of parts) {
    let n: number;
    if (/^0[xX][0-9a-fA-F]*$/.test(p)) n = p.length === 2 ? 0 : Number.parseInt(p.slice(2), 16);
    else if (/^0[0-7]+$/.test(p)) n = Number.parseInt(p.slice(1), 8);
    else if (/^(0|[1-9][0-9]*)$/.test(p)) n = Number(p);
    else return null;
    if (!Number.isSafeInteger(n)) return null;
    nums.push(n);
  }
  const last = nums.pop() as number;
  if (nums.some((n) => n > 255) || last >= 256 ** (4 - nums.length)) return null;
  let v = last;
  for (const [i, n] of nums.entries()) v += n * 256 ** (3 - i);
  return { family: 4, bytes: new Uint8Array([v >>> 24, (v >>> 16) & 255, (v >>> 8) & 255, v & 255]) };
}

/** IPv6 text (`::1`, `[::1]`, `::ffff:127.0.0.1`, `fe80::1%eth0`) → 16 bytes; null when invalid. */
export function parseIPv6(text: string): IpAddress | null {
  let s = text.startsWith('[') && text.endsWith(']') ? text.slice(1, -1) : text;
  s = s.replace(/%[^%]*$/, ''); // zone id
  if (!s.includes(':')) return null;
  // A dotted IPv4 tail (`::ffff:1.2.3.4`) is the last two words.
  const tail = /:((\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3}))$/.exec(s);
  if (tail) {
    const v4 = tail.slice(2, 6).map(Number);
    if (tail.slice(2, 6).some((p) => p.length > 1 && p.startsWith('0')) || v4.some((p) => p > 255)) return null;
    s = `${s.slice(0, tail.index + 1)}${(v4[0] * 256 + v4[1]).toString(16)}:${(v4[2] * 256 + v4[3]).toString(16)}`;
  }
  const halves = s.split('::');
  if (halves.length > 2) return null;
  const parse = (h: string): number[] | null => {
    if (h === '') return [];
    const out: number[] = [];
    for (const w of h.split(':')) {
      if (!/^[0-9a-fA-F]{1,4}$/.test(w)) return null;
      out.push(Number.parseInt(w, 16));
    }
    return out;
  };
  const head = parse(halves[0]);
  const rest = halves.length === 2 ? parse(halves[1]) : [];
  if (!head || !rest) return null;
  const want = 8;
  const words: number[] = [];
  if (halves.length === 2) {
    if (head.length + rest.length > want - 1) return null;
    words.push(...head, ...new Array<number>(want - head.length - rest.length).fill(0), ...rest);
  } else {
    if (head.length !== want) return null;
    words.push(...head);
  }
  const bytes = new Uint8Array(16);
  for (const [i, w] of words.entries()) {
    bytes[2 * i] = w >> 8;
    bytes[2 * i + 1] = w & 255;
  }
  return { family: 6, bytes };
}

/** Either family; null when `text` is not an IP literal (then it is a host name). */
export function parseIp(text: string): IpAddress | null {
  return parseIPv6(text) ?? parseIPv4(text);
}

/** `a.b.c.d`, or IPv6 as eight hex words (for messages and for connecting). */
export function formatIp(ip: IpAddress): string {
  if (ip.family === 4) return ip.bytes.join('.');
  const words: string[] = [];
  for (let i = 0; i < 16; i += 2) words.push(((ip.bytes[i] << 8) | ip.bytes[i + 1]).toString(16));
  return words.join(':');
}

/** A network: `prefix` leading bits of `base`. */
export interface Cidr {
  base: IpAddress;
  prefix: number;
}

/** `10.0.0.0/8`, `fd00::/8`, or a bare address (a /32 or /128). */
export function parseCidr(text: string): Cidr | null {
  const [addr, bits, more] = text.trim().split('/');
  if (more !== undefined) return null;
  const base = parseIp(addr);
  if (!base) return null;
  const max = base.family === 4 ? 32 : 128;
  if (bits === undefined) return { base, prefix: max };
  if (!/^\d{1,3}$/.test(bits) || Number(bits) > max) return null;
  return { base, prefix: Number(bits) };
}

/** Whether `ip` lies in `net` (same family only). */
export function inCidr(ip: IpAddress, net: Cidr): boolean {
  if (ip.family !== net.base.family) return false;
  let bits = net.prefix;
  for (let i = 0; bits > 0; i++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if ((ip.bytes[i] & mask) !== (net.base.bytes[i] & mask)) return false;
  }
  return true;
}

const cidr = (text: string, label: string) => ({ net: parseCidr(text) as Cidr, label });

/** IPv4 ranges that are not the public internet (IANA special-purpose registry). */
const SPECIAL_V4 = [
  cidr('0.0.0.0/8', 'unspecified ("this network")'),
  cidr('10.0.0.0/8', 'private'),
  cidr('100.64.0.0/10', 'carrier-grade NAT'),
  cidr('127.0.0.0/8', 'loopback'),
  cidr('169.254.0.0/16', 'link-local'),
  cidr('172.16.0.0/12', 'private'),
  cidr('192.0.0.0/24', 'IETF protocol assignments'),
  cidr('192.0.2.0/24', 'documentation'),
  cidr('192.31.196.0/24', 'AS112'),
  cidr('192.52.193.0/24', 'AMT'),
  cidr('192.88.99.0/24', '6to4 relay anycast'),
  cidr('192.168.0.0/16', 'private'),
  cidr('192.175.48.0/24', 'AS112'),
  cidr('198.18.0.0/15', 'benchmarking'),
  cidr('198.51.100.0/24', 'documentation'),
  cidr('203.0.113.0/24', 'documentation'),
  cidr('224.0.0.0/4', 'multicast'),
  cidr('240.0.0.0/4', 'reserved / broadcast'),
];

/** IPv6 ranges that embed an IPv4 address: that address decides. */
const EMBEDS_V4 = [
  { net: parseCidr('::ffff:0:0/96') as Cidr, offset: 12 }, // IPv4-mapped
  { net: parseCidr('64:ff9b::/96') as Cidr, offset: 12 }, // NAT64 well-known prefix
  { net: parseCidr('2002::/16') as Cidr, offset: 2 }, // 6to4
];

/** Special ranges inside global unicast 2000::/3; everything outside 2000::/3 is refused. */
const SPECIAL_V6 = [
  cidr('2001::/23', 'IETF protocol assignments (Teredo, ORCHID, …)'),
  cidr('2001:db8::/32', 'documentation'),
  cidr('3fff::/20', 'documentation'),
];
const GLOBAL_V6 = parseCidr('2000::/3') as Cidr;
const NAMED_V6 = [
  cidr('::/128', 'unspecified'),
  cidr('::1/128', 'loopback'),
  cidr('::/96', 'IPv4-compatible (deprecated)'),
  cidr('64:ff9b:1::/48', 'local-use NAT64'),
  cidr('100::/64', 'discard-only'),
  cidr('fc00::/7', 'unique-local'),
  cidr('fe80::/10', 'link-local'),
  cidr('fec0::/10', 'site-local (deprecated)'),
  cidr('ff00::/8', 'multicast'),
];

/**
 * Why `ip` is not a public internet address (`'loopback'`, `'private'`, …), or null when it is
 * one. IPv4-mapped, NAT64 and 6to4 IPv6 addresses are judged by the IPv4 address they embed.
 */
export function specialRange(ip: IpAddress): string | null {
  if (ip.family === 4) return SPECIAL_V4.find((r) => inCidr(ip, r.net))?.label ?? null;
  for (const e of EMBEDS_V4) {
    if (inCidr(ip, e.net)) {
      const inner = specialRange({ family: 4, bytes: ip.bytes.slice(e.offset, e.offset + 4) });
      return inner ? `${inner} (embedded in IPv6)` : null;
    }
  }
  const named = NAMED_V6.find((r) => inCidr(ip, r.net));
  if (named) return named.label;
  if (!inCidr(ip, GLOBAL_V6)) return 'reserved';
  return SPECIAL_V6.find((r) => inCidr(ip, r.net))?.label ?? null;
}

/** Which hosts may be fetched even though their addresses are special. */
export interface MediaAllowList {
  /** Host names (exact, case-insensitive) whose addresses are all accepted; IP literals count as CIDRs. */
  allowHosts?: readonly string[];
  /** Networks whose addresses are accepted (`127.0.0.1/32`, `fd00::/8`). */
  allowCidrs?: readonly string[];
}

interface CompiledAllowList {
  hosts: Set<string>;
  nets: Cidr[];
}

function compileAllowList(a: MediaAllowList): CompiledAllowList {
  const hosts = new Set<string>();
  const nets: Cidr[] = [];
  for (const h of a.allowHosts ?? []) {
    const n = parseCidr(h);
    if (n) nets.push(n);
    else hosts.add(h.trim().toLowerCase().replace(/\.$/, ''));
  }
  for (const c of a.allowCidrs ?? []) {
    const n = parseCidr(c);
    if (!n) throw new VlmeshError('INVALID_CIDR', `not a CIDR (address/prefix): "${c}"`);
    nets.push(n);
  }
  return { hosts, nets };
}

// ───────────────────────────── fetching ─────────────────────────────

export interface FetchMediaOptions extends MediaAllowList {
  /** Limit on the whole fetch, redirects and body included. */
  timeoutMs: number;
  /** Largest body accepted, in bytes. */
  maxBytes: number;
  /** Accepted content-types: exact (`image/png`) or a family (`image/*`). */
  allowedContentTypes: readonly string[];
  /** Redirects followed (default 3). */
  maxRedirects?: number;
  /** Aborts the fetch (the client hung up). */
  signal?: AbortSignal;
  /** Host name resolution, for tests (default node:dns `lookup` with all addresses). */
  resolve?: (host: string) => Promise<string[]>;
}

export interface FetchedMedia {
  bytes: Uint8Array;
  /** The content-type's media type, lower case, no parameters. */
  contentType: string;
  /** The URL the bytes came from (after redirects). */
  finalUrl: string;
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

async function defaultResolve(host: string): Promise<string[]> {
  const all = await dnsLookup(host, { all: true, verbatim: true });
  return all.map((a) => a.address);
}

/** Strips URL credentials for messages. */
function shown(url: URL): string {
  const u = new URL(url.href);
  u.username = '';
  u.password = '';
  return u.href;
}

/** The vetted address to connect to for `url`, or a MediaFetchForbiddenError. */
async function vetHost(url: URL, allow: CompiledAllowList, resolve: (h: string) => Promise<string[]>): Promise<IpAddress> {
  const where = shown(url);
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new MediaFetchForbiddenError(where, `${where}: only http: and https: URLs can be fetched, not ${url.protocol}`);
  }
  // The URL parser has already turned IPv4 shorthand (127.1, 0x7f000001, 2130706433) into a.b.c.d.
  const host = url.hostname.toLowerCase().replace(/\.$/, '');
  const literal = parseIp(host);
  let addresses: IpAddress[];
  if (literal) addresses = [literal];
  else {
    let found: string[];
    try {
      found = await resolve(host);
    } catch (e) {
      throw new MediaFetchFailedError(where, `${where}: the host name ${host} could not be resolved (${(e as Error).message})`, { cause: e });
    }
    addresses = found.map((a) => parseIp(a)).filter((a): a is IpAddress => a !== null);
    if (addresses.length === 0) throw new MediaFetchFailedError(where, `${where}: the host name ${host} has no address`);
  }
  const hostAllowed = allow.hosts.has(host);
  // Every address must pass: a name that also points inside would be tried by the socket anyway.
  for (const a of addresses) {
    if (hostAllowed || allow.nets.some((n) => inCidr(a, n))) continue;
    const why = specialRange(a);
    if (why) {
      throw new MediaFetchForbiddenError(
        where,
        `${where}: fetching from ${formatIp(a)} (${why} address) is not allowed; the server's operator can allow it with --media-allow-host`,
      );
    }
  }
  return addresses[0];
}

interface Hop {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: http.IncomingMessage;
}

/** One request to `url`, connecting to `address` whatever DNS says now. */
function request(url: URL, address: IpAddress, signal: AbortSignal): Promise<Hop> {
  const ip = formatIp(address);
  const family = address.family;
  // Whatever name the socket asks for, it gets the vetted address (no second lookup).
  const pinned = ((_host: string, opts: { all?: boolean }, cb: (...args: unknown[]) => void) => {
    if (opts?.all) cb(null, [{ address: ip, family }]);
    else cb(null, ip, family);
  }) as unknown as LookupFunction;
  const mod = url.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const req = mod.request(
      {
        protocol: url.protocol,
        hostname: url.hostname.replace(/^\[|\]$/g, ''),
        port: url.port || undefined,
        path: `${url.pathname}${url.search}`,
        method: 'GET',
        headers: { accept: '*/*', 'user-agent': 'vlmesh-media-fetch' },
        agent: false,
        lookup: pinned,
        signal,
      },
      (res) => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: res }),
    );
    req.on('error', reject);
    req.end();
  });
}

function typeAllowed(type: string, allowed: readonly string[]): boolean {
  return allowed.some((a) => {
    const p = a.toLowerCase();
    return p.endsWith('/*') ? type.startsWith(p.slice(0, -1)) : type === p;
  });
}

/** Reads `body` up to `maxBytes`; destroys it and throws past that. */
function readCapped(body: http.IncomingMessage, maxBytes: number, where: string): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    body.on('data', (c: Buffer) => {
      size += c.length;
      if (size > maxBytes) {
        body.destroy();
        reject(new MediaTooLargeError(where, maxBytes));
        return;
      }
      chunks.push(c);
    });
    body.on('end', () => {
      const all = Buffer.concat(chunks);
      resolve(new Uint8Array(all.buffer, all.byteOffset, all.length));
    });
    body.on('error', reject);
    body.on('close', () => {
      if (!body.complete) reject(new MediaFetchFailedError(where, `${where}: the connection closed before the whole body arrived`));
    });
  });
}

/**
 * Fetches media from an `http(s):` URL, refusing special addresses (unless allow-listed), more
 * than `maxRedirects` redirects, bodies over `maxBytes`, other content-types, and slowness past
 * `timeoutMs`.
 *
 * @throws MediaFetchForbiddenError, MediaTooLargeError, MediaTimeoutError, MediaTypeError,
 *   MediaFetchFailedError.
 * @example
 * const { bytes, contentType } = await fetchMedia('https://example.com/cat.png',
 *   { timeoutMs: 10_000, maxBytes: 20 << 20, allowedContentTypes: ['image/*'] });
 */
export async function fetchMedia(url: string, o: FetchMediaOptions): Promise<FetchedMedia> {
  let current: URL;
  try {
    current = new URL(url);
  } catch {
    throw new MediaFetchFailedError(url, `not a valid URL: ${url.slice(0, 200)}`);
  }
  const allow = compileAllowList(o);
  const resolve = o.resolve ?? defaultResolve;
  const maxRedirects = o.maxRedirects ?? 3;
  const timeout = new AbortController();
  const timer = setTimeout(() => timeout.abort(), o.timeoutMs);
  const signal = o.signal ? AbortSignal.any([timeout.signal, o.signal]) : timeout.signal;
  const start = shown(current);
  // Every await races the timer, so a hanging lookup cannot outlive it either.
  const timedOut = new Promise<never>((_, reject) => {
    const fail = () => reject(o.signal?.aborted ? new MediaFetchFailedError(start, `${start}: the fetch was cancelled`) : new MediaTimeoutError(start, o.timeoutMs));
    if (signal.aborted) fail();
    else signal.addEventListener('abort', fail, { once: true });
  });
  timedOut.catch(() => {});
  let body: http.IncomingMessage | null = null;
  try {
    for (let hop = 0; ; hop++) {
      const where = shown(current);
      const address = await Promise.race([vetHost(current, allow, resolve), timedOut]);
      let res: Hop;
      try {
        res = await Promise.race([request(current, address, signal), timedOut]);
      } catch (e) {
        if (e instanceof MediaFetchError) throw e;
        throw new MediaFetchFailedError(where, `${where}: ${(e as Error).message}`, { cause: e });
      }
      body = res.body;
      if (REDIRECTS.has(res.status)) {
        res.body.resume();
        const location = res.headers.location;
        if (!location) throw new MediaFetchFailedError(where, `${where}: redirect ${res.status} without a Location header`);
        if (hop >= maxRedirects) throw new MediaFetchFailedError(start, `${start}: more than ${maxRedirects} redirects`);
        try {
          current = new URL(location, current);
        } catch {
          throw new MediaFetchFailedError(where, `${where}: redirect to an invalid URL`);
        }
        continue;
      }
      if (res.status < 200 || res.status >= 300) {
        res.body.resume();
        throw new MediaFetchFailedError(where, `${where}: the server answered HTTP ${res.status}`);
      }
      const contentType = (res.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
      if (!typeAllowed(contentType, o.allowedContentTypes)) {
        res.body.destroy();
        throw new MediaTypeError(where, contentType, o.allowedContentTypes);
      }
      const declared = Number(res.headers['content-length']);
      if (Number.isFinite(declared) && declared > o.maxBytes) {
        res.body.destroy();
        throw new MediaTooLargeError(where, o.maxBytes);
      }
      const bytes = await Promise.race([readCapped(res.body, o.maxBytes, where), timedOut]);
      return { bytes, contentType, finalUrl: where };
    }
  } catch (e) {
    body?.destroy();
    if (e instanceof MediaFetchError) throw e;
    if (timeout.signal.aborted) throw new MediaTimeoutError(start, o.timeoutMs);
    throw new MediaFetchFailedError(start, `${start}: ${(e as Error).message}`, { cause: e });
  } finally {
    clearTimeout(timer);
    if (!signal.aborted) timeout.abort(); // releases the listeners; the fetch is over
  }
}
