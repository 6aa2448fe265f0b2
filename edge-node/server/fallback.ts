/**
 * The cloud fallback: an OpenAI-compatible upstream (vLLM on CUDA, another vlmesh node, …) that
 * takes the chat requests this node cannot serve. openai-api.ts decides *when* (see
 * `fallbackReasonFor`); this module does the *how*: it forwards the client's JSON body and pipes
 * the upstream's answer back byte for byte — status code, content type, and SSE events as they
 * arrive, never buffered — and it tracks whether the upstream is worth trying.
 *
 *   client ─► openai-api.ts ─┬─► local engine                         (path="local")
 *                            └─► no model here / model not here / over the local context /
 *                                queue full / engine failure before the first byte
 *                                 └─ upstream healthy? ─► UpstreamFallback.forward   (path="fallback")
 *                                      POST {base}/chat/completions ─► status + content-type,
 *                                      then each body chunk written as it comes; a client that
 *                                      hangs up aborts the upstream request
 *
 *   health: probe GET {base}/models (or {origin}/health where /models is 404) every
 *           `probeIntervalMs` on an unref'd timer ──► healthy / unhealthy
 *           a forward that cannot connect, or is answered 502/503/504 ──► unhealthy at once (the
 *           caller answers instead: its local error, or 503); the next good probe restores it
 *           a forward that gets no response headers in `responseTimeoutMs` ──► given up (504 when there is
 *           nothing local), still healthy
 *
 * The request's `model` goes upstream unchanged unless `model` (`--fallback-model`) names the
 * upstream's; `/v1/models` of this node lists the upstream's models next to the local one.
 *
 * `--fallback-url` takes the server's origin or its OpenAI base URL: `http://gpu:8000`,
 * `http://gpu:8000/v1` and `http://gpu:8000/v1/` are the same upstream (see
 * `normalizeFallbackUrl`). The API key travels as `Authorization: Bearer`, never in health output.
 */
import type { Agent, ClientRequest, IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import http from 'node:http';
import https from 'node:https';
import { ApiError, ApiErrorType } from '../../shared/api/errors.ts';
import { VlmeshError } from '../../shared/errors.ts';

/** A `--fallback-url` that is not an http(s) URL this module can use. */
export class FallbackUrlError extends VlmeshError {
  constructor(message: string) {
    super('FALLBACK_URL', message);
  }
}

/** Why a request went upstream (the `fallback_reason` of its log line). */
export type FallbackReason = 'no_model' | 'model_not_local' | 'context_length_exceeded' | 'queue_full' | 'mesh_unavailable' | 'engine_error';

/** Default seconds between health probes. */
export const DEFAULT_PROBE_INTERVAL_S = 10;
/** Default seconds to wait for the upstream's response headers (for a non-streaming request: the whole answer). */
export const DEFAULT_RESPONSE_TIMEOUT_S = 600;
/** Default seconds to wait for a TCP connection to the upstream. */
export const DEFAULT_CONNECT_TIMEOUT_S = 5;

/** The last path segment is an API version (`v1`, `v1beta`, `v2`): the URL is already a base URL. */
const VERSION_SEGMENT = /\/v\d+[a-z0-9]*$/i;

/**
 * Turns a `--fallback-url` into the upstream's OpenAI base URL (ending in `/v1` or the version
 * segment it already has, no trailing slash). http and https only; no credentials, query or
 * fragment (the key goes in `--fallback-api-key`).
 *
 * @throws FallbackUrlError naming what is wrong.
 * @example
 * normalizeFallbackUrl('http://gpu:8000').href     // 'http://gpu:8000/v1'
 * normalizeFallbackUrl('https://x.io/vllm/v1/').href // 'https://x.io/vllm/v1'
 * normalizeFallbackUrl('https://x.io/vllm').href    // 'https://x.io/vllm/v1'
 */
export function normalizeFallbackUrl(input: string): URL {
  let url: URL;
  try {
    url = new URL(input.trim());
  } catch {
    throw new FallbackUrlError(`"${input}" is not a URL: give the upstream's address, e.g. http://gpu-box:8000/v1`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new FallbackUrlError(`"${input}" uses ${url.protocol.slice(0, -1)}: the fallback upstream must be an http: or https: URL`);
  }
  if (url.username || url.password) {
    throw new FallbackUrlError(`"${url.host}": put no credentials in the URL; pass the upstream's key with --fallback-api-key`);
  }
  if (url.search || url.hash) throw new FallbackUrlError(`"${input}": the fallback URL takes no query string or fragment`);
  const path = url.pathname.replace(/\/+$/, '');
  url.pathname = VERSION_SEGMENT.test(path) ? path : `${path}/v1`;
  return url;
}

/**
 * Which local outcomes the upstream may take instead: over the local context, queue full, a
 * mesh coordinator whose peers cannot run the model (`mesh_unavailable`), and engine failures (5xx). Every other error is the client's (bad JSON or fields, auth, rate limit,
 * a bad image) and stands.
 *
 * @example
 * fallbackReasonFor(new ApiError(429, ApiErrorType.RateLimit, 'queue_full', '…')) // 'queue_full'
 * fallbackReasonFor(new ApiError(429, ApiErrorType.RateLimit, 'rate_limited', '…')) // null
 */
export function fallbackReasonFor(e: ApiError): FallbackReason | null {
  if (e.apiCode === 'context_length_exceeded') return 'context_length_exceeded';
  if (e.apiCode === 'queue_full') return 'queue_full';
  if (e.apiCode === 'mesh_unavailable') return 'mesh_unavailable';
  if (e.status >= 500) return 'engine_error';
  return null;
}

/**
 * Whether a validation error is about `max_tokens` / `max_completion_tokens`: it may only be over
 * this node's context, which the upstream judges for itself. The caller tells by validating again
 * without the local bound (a value that is wrong anywhere fails again).
 */
export function isMaxTokensError(e: unknown): e is ApiError {
  return e instanceof ApiError && e.status === 400 && (e.param === 'max_tokens' || e.param === 'max_completion_tokens');
}

/** One entry of the upstream's `/v1/models`. */
export interface UpstreamModel {
  id: string;
  object: string;
  [key: string]: unknown;
}

/** The upstream's state, as `/health` of this node shows it (never the key). */
export interface FallbackHealth {
  /** The upstream's base URL. */
  url: string;
  healthy: boolean;
  /** The last failure seen (probe or forward; kept after a recovery, for the record), or null. */
  lastError: string | null;
  /** When the last probe finished (ISO 8601), or null before the first. */
  checkedAt: string | null;
  /** Model ids the upstream listed at its last good probe. */
  models: string[];
}

/** What the upstream answered to one forwarded request, learned while piping it. */
export interface UpstreamResult {
  status: number;
  /** The model name sent upstream. */
  model: string;
  /** A 2xx answer that arrived whole with no error event inside the stream. */
  done: boolean;
  finishReason?: string;
  promptTokens?: number;
  completionTokens?: number;
  /** Seconds from forwarding to the first content delta (streams only). */
  ttft?: number;
  /** The upstream's error code (non-2xx or an error event), or `upstream_disconnected`. */
  errorCode?: string;
}

/** How a forward ended. Only `unreachable` leaves the client's response untouched. */
export type ForwardOutcome =
  | { kind: 'answered'; result: UpstreamResult }
  | { kind: 'client_gone' }
  | { kind: 'unreachable'; error: string; timedOut: boolean };

export interface ForwardOptions {
  /** Sent as `x-request-id`, so the upstream's completion id matches this node's. */
  requestId?: string;
  /** Called with what the upstream answered just before the client's response ends. */
  onResult?: (r: UpstreamResult) => void;
}

export interface UpstreamFallbackOptions {
  /** The upstream's origin or base URL (normalised by `normalizeFallbackUrl`). */
  url: string;
  /** Sent as `Authorization: Bearer KEY`. */
  apiKey?: string;
  /** Replaces the request's `model` upstream; default: the request's own. */
  model?: string;
  /** Milliseconds between health probes. Default 10 000. */
  probeIntervalMs?: number;
  /** Milliseconds to wait for a connection. Default 5 000. */
  connectTimeoutMs?: number;
  /** Milliseconds to wait for response headers after sending a request. Default 600 000. */
  responseTimeoutMs?: number;
  /** Milliseconds a probe may take in all. Default 10 000. */
  probeTimeoutMs?: number;
  /** Called when the upstream turns healthy or unhealthy. */
  onHealthChange?: (h: FallbackHealth) => void;
}

/** Why a request never got response headers. */
class UpstreamUnreachable extends Error {
  constructor(
    message: string,
    /** Connection-level: the upstream is down (marks it unhealthy). */
    readonly connectionFailed: boolean,
    readonly timedOut: boolean,
    /** The request went out on a kept-alive socket that the upstream had just closed: retry once. */
    readonly staleSocket: boolean,
  ) {
    super(message);
  }
}

/** Response headers passed through to the client (content headers only; no hop-by-hop ones). */
const PASSED_HEADERS = ['content-type', 'cache-control', 'retry-after'] as const;

/** Upstream statuses that mean "not there" rather than an answer: handled like a failed connection. */
const GATEWAY_FAILURES = new Set([502, 503, 504]);

/** Largest body kept to read usage / error codes from a non-streamed answer (it is piped regardless). */
const OBSERVE_LIMIT = 8 * 2 ** 20;

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Reads `finish_reason`, `usage` and `error.code` out of a chat completion (chunk) object. */
function readFacts(obj: unknown, into: Partial<UpstreamResult>): void {
  if (!isRecord(obj)) return;
  if (isRecord(obj.error)) {
    const code = obj.error.code ?? obj.error.type;
    into.errorCode = code === undefined || code === null ? 'upstream_error' : String(code);
  }
  if (Array.isArray(obj.choices)) {
    for (const c of obj.choices) if (isRecord(c) && typeof c.finish_reason === 'string') into.finishReason = c.finish_reason;
  }
  if (isRecord(obj.usage)) {
    if (typeof obj.usage.prompt_tokens === 'number') into.promptTokens = obj.usage.prompt_tokens;
    if (typeof obj.usage.completion_tokens === 'number') into.completionTokens = obj.usage.completion_tokens;
  }
}

/**
 * Watches an SSE byte stream go by (it does not hold it back): finish reason, usage, error
 * events, and when the first content delta passed.
 */
class SseObserver {
  private readonly decoder = new TextDecoder();
  private buffer = '';
  readonly facts: Partial<UpstreamResult> = {};
  firstContentAt: number | null = null;

  push(chunk: Buffer): void {
    this.buffer += this.decoder.decode(chunk, { stream: true });
    const sep = /\r?\n\r?\n/g;
    let start = 0;
    for (let m = sep.exec(this.buffer); m; m = sep.exec(this.buffer)) {
      this.event(this.buffer.slice(start, m.index));
      start = m.index + m[0].length;
    }
    this.buffer = this.buffer.slice(start);
    // An event this long is not one we can learn from; stop holding it.
    if (this.buffer.length > OBSERVE_LIMIT) this.buffer = '';
  }

  private event(text: string): void {
    const data = text
      .split(/\r?\n/)
      .filter((l) => l.startsWith('data:'))
      .map((l) => l.slice(5).replace(/^ /, ''))
      .join('\n');
    if (data === '' || data === '[DONE]') return;
    let obj: unknown;
    try {
      obj = JSON.parse(data);
    } catch {
      return;
    }
    readFacts(obj, this.facts);
    if (this.firstContentAt === null && isRecord(obj) && Array.isArray(obj.choices)) {
      for (const c of obj.choices) {
        const d = isRecord(c) ? c.delta : undefined;
        if (isRecord(d) && ((typeof d.content === 'string' && d.content !== '') || Array.isArray(d.tool_calls))) {
          this.firstContentAt = performance.now();
          break;
        }
      }
    }
  }
}

/** Keeps (up to a limit) a non-streamed body that is being piped, to read its facts at the end. */
class BodyObserver {
  private readonly chunks: Buffer[] = [];
  private size = 0;
  readonly facts: Partial<UpstreamResult> = {};

  push(chunk: Buffer): void {
    this.size += chunk.length;
    if (this.size <= OBSERVE_LIMIT) this.chunks.push(chunk);
  }

  finish(): void {
    if (this.size > OBSERVE_LIMIT) return;
    try {
      readFacts(JSON.parse(Buffer.concat(this.chunks).toString('utf8')), this.facts);
    } catch {
      // Not JSON: nothing to learn.
    }
  }
}

/** Reads a small response body as text (at most `limit` bytes kept). */
function readText(res: IncomingMessage, limit: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    res.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= limit) chunks.push(c);
    });
    res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    res.on('error', reject);
  });
}

function pickHeaders(h: IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of PASSED_HEADERS) {
    const v = h[name];
    if (typeof v === 'string') out[name] = v;
  }
  return out;
}

const errorMessage = (e: unknown) => (e instanceof Error ? e.message || (e as NodeJS.ErrnoException).code || e.name : String(e));

/**
 * One OpenAI-compatible upstream: forwards chat completions to it and keeps track of its health.
 *
 * @example
 * const fallback = new UpstreamFallback({ url: 'http://gpu-box:8000', apiKey: process.env.KEY });
 * fallback.start();
 * if (fallback.healthy) await fallback.forward(requestJson, res, { requestId });
 * fallback.close();
 */
export class UpstreamFallback {
  /** The upstream's base URL (`…/v1`). */
  readonly baseUrl: URL;
  private readonly o: UpstreamFallbackOptions;
  private readonly transport: typeof http | typeof https;
  private readonly agent: Agent;
  private state = { healthy: true, lastError: null as string | null, checkedAt: null as string | null };
  private upstreamModels: UpstreamModel[] = [];
  private timer: ReturnType<typeof setInterval> | null = null;
  private probing: Promise<boolean> | null = null;

  constructor(o: UpstreamFallbackOptions) {
    this.o = o;
    this.baseUrl = normalizeFallbackUrl(o.url);
    this.transport = this.baseUrl.protocol === 'https:' ? https : http;
    this.agent = new this.transport.Agent({ keepAlive: true });
  }

  /** Whether requests are forwarded now (true until a probe or a forward finds it down). */
  get healthy(): boolean {
    return this.state.healthy;
  }

  /** The model name a request is forwarded under. */
  upstreamModel(requested: string): string {
    return this.o.model ?? requested;
  }

  /** The upstream's state for `/health`. */
  health(): FallbackHealth {
    return { url: this.baseUrl.href, ...this.state, models: this.upstreamModels.map((m) => m.id) };
  }

  /** The upstream's models at its last good probe (empty while it is unhealthy). */
  models(): readonly UpstreamModel[] {
    return this.state.healthy ? this.upstreamModels : [];
  }

  /** Probes now, then every `probeIntervalMs` (the timer does not keep the process alive). */
  start(): void {
    if (this.timer) return;
    void this.probe();
    this.timer = setInterval(() => void this.probe(), this.o.probeIntervalMs ?? DEFAULT_PROBE_INTERVAL_S * 1000);
    this.timer.unref();
  }

  /** Stops probing and closes idle connections. */
  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.agent.destroy();
  }

  /** Checks the upstream once (one probe at a time); resolves to its health. */
  probe(): Promise<boolean> {
    this.probing ??= this.runProbe().finally(() => {
      this.probing = null;
    });
    return this.probing;
  }

  private async runProbe(): Promise<boolean> {
    const signal = AbortSignal.timeout(this.o.probeTimeoutMs ?? 10_000);
    const modelsUrl = new URL(`${this.baseUrl.pathname}/models`, this.baseUrl);
    try {
      const res = await this.open('GET', modelsUrl, null, signal);
      const text = await readText(res, 2 ** 20);
      const status = res.statusCode ?? 0;
      if (status >= 200 && status < 300) {
        let list: unknown;
        try {
          list = JSON.parse(text);
        } catch {
          list = null;
        }
        const data = isRecord(list) && Array.isArray(list.data) ? list.data : [];
        this.upstreamModels = data.filter((m): m is UpstreamModel => isRecord(m) && typeof m.id === 'string').map((m) => ({ ...m, object: 'model' }));
        return this.mark(true, null);
      }
      if (status === 404) {
        // No /models route: the origin's /health (vLLM, TGI, vlmesh) is the next best sign of life.
        const health = await this.open('GET', new URL('/health', this.baseUrl), null, signal);
        await readText(health, 2 ** 16);
        const ok = (health.statusCode ?? 0) >= 200 && (health.statusCode ?? 0) < 300;
        return this.mark(ok, ok ? null : `GET ${modelsUrl.href} answered 404 and GET /health answered ${health.statusCode}`);
      }
      const hint = status === 401 || status === 403 ? ' (check --fallback-api-key)' : '';
      return this.mark(false, `GET ${modelsUrl.href} answered ${status}${hint}`);
    } catch (e) {
      return this.mark(false, e instanceof UpstreamUnreachable ? e.message : `GET ${modelsUrl.href} failed: ${errorMessage(e)}`);
    } finally {
      this.state.checkedAt = new Date().toISOString();
    }
  }

  private mark(healthy: boolean, error: string | null): boolean {
    const changed = this.state.healthy !== healthy;
    this.state.healthy = healthy;
    if (error !== null) this.state.lastError = error;
    if (changed) this.o.onHealthChange?.(this.health());
    return healthy;
  }

  /**
   * Sends a request and resolves with the response once its headers arrive. Rejects with
   * `UpstreamUnreachable` on connection failures and timeouts; `signal` aborts it.
   */
  private open(method: 'GET' | 'POST', url: URL, body: Buffer | null, signal: AbortSignal, requestId?: string): Promise<IncomingMessage> {
    const headers: Record<string, string> = {
      accept: method === 'POST' ? 'application/json, text/event-stream' : 'application/json',
      'accept-encoding': 'identity',
      'user-agent': 'vlmesh-fallback',
    };
    if (this.o.apiKey) headers.authorization = `Bearer ${this.o.apiKey}`;
    if (body) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = String(body.length);
    }
    if (requestId) headers['x-request-id'] = requestId;
    const connectMs = this.o.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_S * 1000;
    const responseMs = this.o.responseTimeoutMs ?? DEFAULT_RESPONSE_TIMEOUT_S * 1000;
    return new Promise((resolve, reject) => {
      let req: ClientRequest | null = null;
      const timers: ReturnType<typeof setTimeout>[] = [];
      const clear = () => {
        for (const t of timers) clearTimeout(t);
      };
      const fail = (e: UpstreamUnreachable | Error) => {
        clear();
        reject(e);
        req?.destroy();
      };
      try {
        req = this.transport.request(url, { method, headers, agent: this.agent, signal });
      } catch (e) {
        reject(new UpstreamUnreachable(errorMessage(e), true, false, false));
        return;
      }
      const r = req;
      r.on('socket', (socket) => {
        if (!socket.connecting) return;
        const t = setTimeout(
          () => fail(new UpstreamUnreachable(`no connection to ${url.host} within ${connectMs} ms`, true, true, false)),
          connectMs,
        );
        timers.push(t);
        socket.once('connect', () => clearTimeout(t));
      });
      timers.push(setTimeout(() => fail(new UpstreamUnreachable(`${url.host} sent no response within ${responseMs / 1000} s`, false, true, false)), responseMs));
      r.on('response', (res) => {
        clear();
        resolve(res);
      });
      r.on('error', (e: NodeJS.ErrnoException) => {
        if (signal.aborted) return fail(e);
        const stale = r.reusedSocket && (e.code === 'ECONNRESET' || e.code === 'EPIPE');
        fail(new UpstreamUnreachable(`${method} ${url.href} failed: ${errorMessage(e)}`, true, false, stale));
      });
      r.end(body ?? undefined);
    });
  }

  /**
   * Forwards a chat completion body (`model` replaced when the fallback names one) and pipes the
   * answer to `res` as it arrives. Resolves once the answer ended, the client left, or — the only
   * case where `res` is left untouched for the caller — the upstream could not be reached.
   */
  async forward(body: Record<string, unknown>, res: ServerResponse, opts: ForwardOptions = {}): Promise<ForwardOutcome> {
    // A client that left while this node tried locally costs the upstream nothing.
    if (res.destroyed) return { kind: 'client_gone' };
    const model = this.upstreamModel(String(body.model));
    const payload = Buffer.from(JSON.stringify({ ...body, model }));
    const chatUrl = new URL(`${this.baseUrl.pathname}/chat/completions`, this.baseUrl);
    const abort = new AbortController();
    const onClose = () => {
      if (!res.writableFinished) abort.abort();
    };
    res.on('close', onClose);
    const started = performance.now();
    let up: IncomingMessage;
    try {
      up = await this.open('POST', chatUrl, payload, abort.signal, opts.requestId).catch((e: unknown) => {
        // A kept-alive socket the upstream had just closed: once more on a fresh one.
        if (e instanceof UpstreamUnreachable && e.staleSocket && !abort.signal.aborted) return this.open('POST', chatUrl, payload, abort.signal, opts.requestId);
        throw e;
      });
    } catch (e) {
      res.off('close', onClose);
      if (abort.signal.aborted || res.destroyed) return { kind: 'client_gone' };
      const u = e instanceof UpstreamUnreachable ? e : new UpstreamUnreachable(errorMessage(e), true, false, false);
      if (u.connectionFailed) this.mark(false, u.message);
      else this.state.lastError = u.message;
      return { kind: 'unreachable', error: u.message, timedOut: u.timedOut };
    }
    const status = up.statusCode ?? 502;
    if (GATEWAY_FAILURES.has(status)) {
      // A proxy in front of a dead upstream, or an upstream that cannot serve: down, and the
      // caller's own answer (the local error, or a 503) is more useful than this one.
      const text = (await readText(up, 2 ** 12).catch(() => '')).trim().slice(0, 200);
      res.off('close', onClose);
      if (abort.signal.aborted || res.destroyed) return { kind: 'client_gone' };
      const message = `POST ${chatUrl.href} answered ${status}${text ? `: ${text}` : ''}`;
      this.mark(false, message);
      return { kind: 'unreachable', error: message, timedOut: status === 504 };
    }
    // It answered: whatever the status, it is up.
    this.mark(true, null);
    const sse = /^text\/event-stream\b/i.test(up.headers['content-type'] ?? '');
    res.writeHead(status, pickHeaders(up.headers));
    // SSE: the client sees the headers now, as it would from the upstream itself.
    if (sse) res.flushHeaders();
    const sseObserver = sse ? new SseObserver() : null;
    const bodyObserver = sse ? null : new BodyObserver();
    await new Promise<void>((resolve) => {
      abort.signal.addEventListener('abort', () => up.destroy(), { once: true });
      up.on('data', (chunk: Buffer) => {
        sseObserver?.push(chunk);
        bodyObserver?.push(chunk);
        if (!res.write(chunk)) {
          up.pause();
          res.once('drain', () => up.resume());
        }
      });
      up.on('error', () => {});
      up.on('close', () => resolve());
    });
    res.off('close', onClose);
    if (abort.signal.aborted || res.destroyed) return { kind: 'client_gone' };
    bodyObserver?.finish();
    const facts = sseObserver?.facts ?? bodyObserver?.facts ?? {};
    const ok = status >= 200 && status < 300;
    const result: UpstreamResult = {
      status,
      model,
      ...facts,
      done: ok && up.complete && facts.errorCode === undefined,
      ...(sseObserver?.firstContentAt != null ? { ttft: (sseObserver.firstContentAt - started) / 1000 } : {}),
    };
    if (!ok && result.errorCode === undefined) result.errorCode = `upstream_${status}`;
    if (!up.complete) {
      const message = 'the fallback upstream closed the connection before the answer ended';
      result.errorCode ??= 'upstream_disconnected';
      this.state.lastError = message;
      opts.onResult?.(result);
      if (sse) {
        // As a local stream failure reads: an error event, then the end of the stream.
        const err = new ApiError(502, ApiErrorType.Server, 'upstream_disconnected', message);
        res.end(`data: ${JSON.stringify(err.toJSON())}\n\ndata: [DONE]\n\n`);
      } else res.destroy();
      return { kind: 'answered', result };
    }
    opts.onResult?.(result);
    res.end();
    return { kind: 'answered', result };
  }
}
