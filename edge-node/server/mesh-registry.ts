/**
 * The coordinator's list of donor tabs (`/donate`), kept in memory until the mesh proper lands:
 *
 *   POST   /v1/mesh/donors                  {adapter, features, memory, gflops} → 201 {id, heartbeatIntervalS}
 *   POST   /v1/mesh/donors/<id>/heartbeat   → 200 {id, lastSeen}; 404 when unknown (register again)
 *   DELETE /v1/mesh/donors/<id>             → 204
 *   GET    /v1/mesh                         → {peers: [{id, kind, adapter, features, memory, gflops, registeredAt, lastSeen}]}
 *
 * With a running pipeline (`meshHandler({pipeline})`), `GET /v1/mesh` also lists the stage peers
 * (`{id, kind, adapter, range, state}`) and `hops`: per peer, frames and bytes each way, forward
 * round trips and their mean latency, and the bytes of one decoded token's frame.
 *
 * A donor not heard from for three heartbeat intervals is dropped. With API keys configured the
 * routes need `Authorization: Bearer KEY` like the rest of `/v1/`. Errors use the OpenAI error body.
 */
import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { MeshHopSample } from '../../shared/engine/metrics.ts';

/** Seconds between a donor's heartbeats. */
export const HEARTBEAT_INTERVAL_S = 10;
/** Most donors kept (a registration past it gets 503). */
export const MAX_DONORS = 256;
const MAX_BODY_BYTES = 64 * 1024;

export interface DonorAdapter {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  isFallbackAdapter: boolean;
}

export interface DonorMemory {
  estimateBytes: number;
  maxBufferSize: number;
  maxStorageBufferBindingSize: number;
}

/** One registered donor as `GET /v1/mesh` lists it. */
export interface MeshPeer {
  id: string;
  kind: 'browser-donor';
  adapter: DonorAdapter;
  features: string[];
  memory: DonorMemory;
  gflops: number;
  /** ISO times. */
  registeredAt: string;
  lastSeen: string;
}

class BadDonorError extends Error {
  constructor(
    readonly param: string,
    message: string,
  ) {
    super(message);
  }
}

const str = (v: unknown, param: string, max = 256): string => {
  if (v === undefined || v === null) return '';
  if (typeof v !== 'string') throw new BadDonorError(param, `'${param}' must be a string`);
  return v.slice(0, max);
};
const nonNegative = (v: unknown, param: string): number => {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new BadDonorError(param, `'${param}' must be a non-negative number`);
  return v;
};

/** Validates a registration body (throws BadDonorError naming the field). */
export function parseDonorOffer(body: unknown): Pick<MeshPeer, 'adapter' | 'features' | 'memory' | 'gflops'> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new BadDonorError('', 'the body must be a JSON object');
  const b = body as Record<string, unknown>;
  const a = b.adapter;
  if (typeof a !== 'object' || a === null || Array.isArray(a)) throw new BadDonorError('adapter', "'adapter' must be an object");
  const ad = a as Record<string, unknown>;
  if (!Array.isArray(b.features) || b.features.length > 64 || b.features.some((f) => typeof f !== 'string' || f.length > 64)) {
    throw new BadDonorError('features', "'features' must be an array of at most 64 strings");
  }
  const m = b.memory;
  if (typeof m !== 'object' || m === null || Array.isArray(m)) throw new BadDonorError('memory', "'memory' must be an object");
  const mem = m as Record<string, unknown>;
  return {
    adapter: {
      vendor: str(ad.vendor, 'adapter.vendor'),
      architecture: str(ad.architecture, 'adapter.architecture'),
      device: str(ad.device, 'adapter.device'),
      description: str(ad.description, 'adapter.description'),
      isFallbackAdapter: ad.isFallbackAdapter === true,
    },
    features: b.features as string[],
    memory: {
      estimateBytes: nonNegative(mem.estimateBytes, 'memory.estimateBytes'),
      maxBufferSize: nonNegative(mem.maxBufferSize ?? 0, 'memory.maxBufferSize'),
      maxStorageBufferBindingSize: nonNegative(mem.maxStorageBufferBindingSize ?? 0, 'memory.maxStorageBufferBindingSize'),
    },
    gflops: nonNegative(b.gflops, 'gflops'),
  };
}

interface Entry {
  peer: Omit<MeshPeer, 'registeredAt' | 'lastSeen'>;
  registeredAt: number;
  lastSeen: number;
}

/**
 * The in-memory donor list.
 *
 * @example
 * const reg = new DonorRegistry();
 * const id = reg.register(offer);
 * reg.heartbeat(id); // true while known
 */
export class DonorRegistry {
  private readonly donors = new Map<string, Entry>();
  constructor(
    private readonly o: { now?: () => number; ttlMs?: number; maxDonors?: number } = {},
  ) {}

  private now(): number {
    return this.o.now?.() ?? Date.now();
  }

  private expire(): void {
    const ttl = this.o.ttlMs ?? HEARTBEAT_INTERVAL_S * 3 * 1000;
    const now = this.now();
    for (const [id, e] of this.donors) if (now - e.lastSeen > ttl) this.donors.delete(id);
  }

  /** Adds a donor; returns its id, or null when the list is full. */
  register(offer: Pick<MeshPeer, 'adapter' | 'features' | 'memory' | 'gflops'>): string | null {
    this.expire();
    if (this.donors.size >= (this.o.maxDonors ?? MAX_DONORS)) return null;
    const id = randomUUID();
    const now = this.now();
    this.donors.set(id, { peer: { id, kind: 'browser-donor', ...offer }, registeredAt: now, lastSeen: now });
    return id;
  }

  /** Records a heartbeat; false when the id is unknown (or expired). */
  heartbeat(id: string): number | null {
    this.expire();
    const e = this.donors.get(id);
    if (!e) return null;
    e.lastSeen = this.now();
    return e.lastSeen;
  }

  remove(id: string): boolean {
    return this.donors.delete(id);
  }

  /** Live donors, oldest registration first. */
  list(): MeshPeer[] {
    this.expire();
    return [...this.donors.values()].map((e) => ({
      ...e.peer,
      registeredAt: new Date(e.registeredAt).toISOString(),
      lastSeen: new Date(e.lastSeen).toISOString(),
    }));
  }
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  if (status === 204) {
    res.writeHead(204);
    res.end();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)), 'cache-control': 'no-store' });
  res.end(text);
}

function sendError(res: ServerResponse, status: number, code: string, message: string, param: string | null = null): void {
  const type = status === 401 ? 'authentication_error' : status === 404 ? 'not_found_error' : status >= 500 ? 'service_unavailable_error' : 'invalid_request_error';
  sendJson(res, status, { error: { message, type, param, code } });
}

const digest = (s: string) => createHash('sha256').update(s).digest();

/** Whether the request carries one of `keys` as a bearer token (always true without keys). */
export function bearerAuthorized(req: IncomingMessage, keys: readonly string[]): boolean {
  if (keys.length === 0) return true;
  const m = /^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? '');
  if (!m) return false;
  const got = digest(m[1]!.trim());
  let ok = false;
  for (const k of keys) ok = timingSafeEqual(got, digest(k)) || ok;
  return ok;
}

function readBody(req: IncomingMessage): Promise<string | null> {
  return new Promise((resolve, reject) => {
    let size = 0;
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY_BYTES) {
        resolve(null);
        req.resume();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

/**
 * The `/v1/mesh` routes over a registry. Resolves when answered.
 *
 * @example
 * const mesh = meshHandler({ registry: new DonorRegistry(), apiKeys: [] });
 * if (path === '/v1/mesh' || path.startsWith('/v1/mesh/')) return mesh(req, res, path);
 */
/** A stage peer of the running pipeline, as `GET /v1/mesh` lists it. */
export interface PipelinePeer {
  id: string;
  kind: string;
  adapter: string;
  /** Half-open decoder layer range, null while the peer holds none. */
  range: readonly [number, number] | null;
  state: 'active' | 'idle' | 'lost';
}

/** What the mesh coordinator reports (`MeshCoordinator.hops()` fits). */
export interface PipelineView {
  /** One entry per peer: who it is, its range and state, and its hop counters (listed as given). */
  hops(): readonly (MeshHopSample & { kind: string; adapter: string; range: readonly [number, number] | null })[];
}

export function meshHandler(o: { registry: DonorRegistry; apiKeys?: readonly string[]; pipeline?: PipelineView }) {
  return async (req: IncomingMessage, res: ServerResponse, path: string): Promise<void> => {
    if (!bearerAuthorized(req, o.apiKeys ?? [])) {
      res.setHeader('www-authenticate', 'Bearer');
      sendError(res, 401, 'invalid_api_key', 'invalid or missing API key (send Authorization: Bearer KEY)');
      req.resume();
      return;
    }
    const route = path.replace(/\/+$/, '');
    const method = req.method ?? 'GET';
    const wrong = (allowed: string) => {
      res.setHeader('allow', allowed);
      sendError(res, 405, 'method_not_allowed', `${method} is not allowed on ${route}; use ${allowed}`);
      req.resume();
    };
    if (route === '/v1/mesh') {
      if (method !== 'GET' && method !== 'HEAD') return wrong('GET');
      if (!o.pipeline) return sendJson(res, 200, { peers: o.registry.list() });
      const hops = o.pipeline.hops();
      const stages: PipelinePeer[] = hops.map((h) => ({ id: h.peer, kind: h.kind, adapter: h.adapter, range: h.range, state: h.state }));
      return sendJson(res, 200, { peers: [...o.registry.list(), ...stages], hops });
    }
    if (route === '/v1/mesh/donors') {
      if (method === 'GET') return sendJson(res, 200, { peers: o.registry.list() });
      if (method !== 'POST') return wrong('GET, POST');
      const text = await readBody(req);
      if (text === null) return sendError(res, 413, 'request_too_large', `the registration is larger than ${MAX_BODY_BYTES} bytes`);
      let body: unknown;
      try {
        body = JSON.parse(text);
      } catch {
        return sendError(res, 400, 'invalid_json', 'the body is not valid JSON');
      }
      let offer: ReturnType<typeof parseDonorOffer>;
      try {
        offer = parseDonorOffer(body);
      } catch (e) {
        if (e instanceof BadDonorError) return sendError(res, 400, 'invalid_value', e.message, e.param || null);
        throw e;
      }
      const id = o.registry.register(offer);
      if (id === null) return sendError(res, 503, 'mesh_full', `the coordinator already has ${MAX_DONORS} donors; try again later`);
      return sendJson(res, 201, { id, heartbeatIntervalS: HEARTBEAT_INTERVAL_S });
    }
    const m = /^\/v1\/mesh\/donors\/([A-Za-z0-9-]{1,64})(\/heartbeat)?$/.exec(route);
    if (m) {
      const id = m[1]!;
      if (m[2]) {
        if (method !== 'POST') return wrong('POST');
        req.resume();
        const seen = o.registry.heartbeat(id);
        if (seen === null) return sendError(res, 404, 'unknown_donor', `no donor ${id} (it expired or the coordinator restarted); register again`);
        return sendJson(res, 200, { id, lastSeen: new Date(seen).toISOString() });
      }
      if (method !== 'DELETE') return wrong('DELETE');
      req.resume();
      if (!o.registry.remove(id)) return sendError(res, 404, 'unknown_donor', `no donor ${id}`);
      return sendJson(res, 204, null);
    }
    req.resume();
    sendError(res, 404, 'not_found', `no mesh route ${method} ${route}`);
  };
}
