/**
 * The vision-embedding cache: the vision tower's output for one image (merged features and one
 * tensor per DeepStack level), kept under a content key so the same picture sent again — the
 * next turn of a chat, a retry, another user's request for a popular image — skips the tower.
 *
 *   key   = sha256( "vlmesh/vision-key/v1" | len·modelId | len·canonical(params) | len·imageBytes )
 *   value = VisionEmbedding { tokens, hidden, merged [tokens, hidden], deepstack[L] [tokens, hidden] }
 *
 * Every field of the key is length-prefixed (u64 little-endian), so no two different
 * (modelId, params, bytes) triples share an encoding however their bytes split; `params` is
 * encoded as JSON with object keys sorted, so key order does not matter.
 *
 * This module holds what every runtime shares: the key, the `VisionCache` interface, the
 * in-process `MemoryVisionCache` (LRU by bytes, with a TTL) and the binary value format that
 * caches outside the process (Redis, edge-node/io/redis-vision-cache.ts) store:
 *
 *   offset  size  field
 *        0     4  magic "VLVE"
 *        4     2  format version (u16 LE, 1)
 *        6     2  dtype (u16 LE, 1 = f32)
 *        8     4  tokens (u32 LE)
 *       12     4  hidden (u32 LE)
 *       16     4  DeepStack levels L (u32 LE)
 *       20     4  reserved (0)
 *       24     …  merged, then deepstack[0..L), each tokens·hidden f32 LE, bit for bit
 *   total = 24 + 4 · tokens · hidden · (1 + L)
 *
 * Isomorphic: hashing goes through `crypto.subtle`, so it runs in Node, browsers and workers.
 */
import { ShapeError, VlmeshError } from '../errors.ts';

/** One image's vision-tower output, f32: merged features and one tensor per DeepStack level. */
export interface VisionEmbedding {
  /** Rows: the image's tokens after the 2×2 merge. */
  tokens: number;
  /** Columns: the text model's hidden size. */
  hidden: number;
  /** [tokens, hidden] */
  merged: Float32Array;
  /** One [tokens, hidden] tensor per DeepStack level, in layer order. */
  deepstack: Float32Array[];
}

/** Counters a cache keeps; the server exports them as metrics. */
export interface VisionCacheStats {
  /** `get` calls that returned a value. */
  hits: number;
  /** `get` calls that returned null (absent, expired, unreadable, or the store was unreachable). */
  misses: number;
  /** Store failures: unreachable, timed out, or a stored value that did not decode. */
  errors: number;
  /** Values held in this process's memory (0 for a cache whose store lives elsewhere). */
  entries: number;
  /** Bytes of f32 data held in this process's memory (0 for a cache whose store lives elsewhere). */
  bytes: number;
}

/**
 * A store of vision embeddings by key (see `visionCacheKey`). Values are treated as immutable:
 * do not write into the arrays of a value after `set` or after `get` returned it.
 *
 * `get` and `set` never reject because the store failed (a failure counts in `stats.errors` and
 * reads as a miss); they reject only when called wrongly (a value whose arrays do not match its
 * dims: `ShapeError`).
 */
export interface VisionCache {
  get(key: string): Promise<VisionEmbedding | null>;
  set(key: string, value: VisionEmbedding): Promise<void>;
  /** A snapshot of the counters. */
  readonly stats: VisionCacheStats;
  /** Releases the store (memory, connections); later calls miss. */
  close(): Promise<void>;
}

/** A stored value that is not a vision embedding in this format: short, foreign, corrupt or newer. */
export class VisionCacheDecodeError extends VlmeshError {
  /** Which check failed. */
  readonly reason: 'short' | 'magic' | 'version' | 'dtype' | 'length';
  constructor(reason: VisionCacheDecodeError['reason'], message: string) {
    super('VISION_CACHE_DECODE', `cached vision embedding unreadable: ${message}`);
    this.reason = reason;
  }
}

// ---------------------------------------------------------------------------------------------
// Key

const KEY_DOMAIN = 'vlmesh/vision-key/v1';

/** JSON with object keys sorted; refuses what JSON would silently change (NaN, undefined in arrays, …). */
function canonicalJson(v: unknown, path: string): string {
  if (v === null || typeof v === 'boolean' || typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new TypeError(`vision cache key: ${path} is ${v}; params must be finite numbers`);
    return JSON.stringify(v);
  }
  if (Array.isArray(v)) return `[${v.map((x, i) => canonicalJson(x, `${path}[${i}]`)).join(',')}]`;
  if (ArrayBuffer.isView(v) && !(v instanceof DataView)) {
    // Typed arrays (e.g. image_mean as Float32Array) key like the plain array of their values.
    return canonicalJson(Array.from(v as unknown as ArrayLike<unknown>), path);
  }
  if (typeof v === 'object') {
    const proto = Object.getPrototypeOf(v);
    if (proto !== Object.prototype && proto !== null) {
      throw new TypeError(`vision cache key: ${path} is a ${proto?.constructor?.name ?? 'object'}; params must be plain JSON data`);
    }
    const rec = v as Record<string, unknown>;
    const keys = Object.keys(rec)
      .filter((k) => rec[k] !== undefined)
      .sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(rec[k], `${path}.${k}`)}`).join(',')}}`;
  }
  throw new TypeError(`vision cache key: ${path} is a ${typeof v}; params must be plain JSON data`);
}

/**
 * The cache key of one image: lowercase hex SHA-256 over the model id, the preprocessing
 * parameters (canonical JSON: key order does not matter) and the image's bytes, each
 * length-prefixed. Give every parameter that changes the vision tower's output (resize bounds,
 * patch size, merge size, mean/std, dtype, …); `modelId` should name the weights (repo and
 * revision, or a hash of the checkpoint), not only the architecture.
 *
 * @throws TypeError when `params` holds something that is not plain JSON data (a function, a
 *   Map, NaN, …): such a value has no stable encoding.
 * @example
 * const key = await visionCacheKey({
 *   modelId: 'Qwen/Qwen3-VL-2B-Instruct@main',
 *   bytes: pngBytes,
 *   params: { minPixels: 3136, maxPixels: 12845056, patchSize: 16, mergeSize: 2 },
 * });
 * const hit = await cache.get(key);
 */
export async function visionCacheKey(parts: { modelId: string; bytes: Uint8Array; params: Record<string, unknown> }): Promise<string> {
  const enc = new TextEncoder();
  const fields = [enc.encode(KEY_DOMAIN), enc.encode(parts.modelId), enc.encode(canonicalJson(parts.params, 'params')), parts.bytes];
  let total = 0;
  for (const f of fields) total += 8 + f.length;
  const buf = new Uint8Array(total);
  const dv = new DataView(buf.buffer);
  let off = 0;
  for (const f of fields) {
    dv.setBigUint64(off, BigInt(f.length), true);
    buf.set(f, off + 8);
    off += 8 + f.length;
  }
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', buf));
  let hex = '';
  for (const b of digest) hex += b.toString(16).padStart(2, '0');
  return hex;
}

// ---------------------------------------------------------------------------------------------
// Value checks and the binary format

/** Checks that every array of `e` holds `tokens · hidden` values. @throws ShapeError */
export function checkVisionEmbedding(e: VisionEmbedding): void {
  const { tokens, hidden } = e;
  if (!Number.isInteger(tokens) || tokens < 0 || tokens > 0xffffffff || !Number.isInteger(hidden) || hidden < 0 || hidden > 0xffffffff) {
    throw new ShapeError(`vision embedding: tokens ${tokens} and hidden ${hidden} must be u32 integers`);
  }
  const n = tokens * hidden;
  if (!(e.merged instanceof Float32Array) || e.merged.length !== n) {
    throw new ShapeError(`vision embedding: merged must be a Float32Array [${tokens}, ${hidden}] (${n} values), got ${e.merged?.length} values`);
  }
  for (const [i, d] of e.deepstack.entries()) {
    if (!(d instanceof Float32Array) || d.length !== n) {
      throw new ShapeError(`vision embedding: deepstack[${i}] must be a Float32Array [${tokens}, ${hidden}] (${n} values), got ${d?.length} values`);
    }
  }
}

/** Bytes of f32 data in `e` (what the memory cache charges for it). */
export function visionEmbeddingBytes(e: VisionEmbedding): number {
  return 4 * e.merged.length * (1 + e.deepstack.length);
}

const MAGIC = [0x56, 0x4c, 0x56, 0x45]; // "VLVE"
const FORMAT_VERSION = 1;
const DTYPE_F32 = 1;
const HEADER_BYTES = 24;
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** Copies `src`'s bit patterns into `out` at `off` as little-endian words (NaN payloads and −0 kept). */
function writeF32(out: Uint8Array, off: number, src: Float32Array): void {
  if (LITTLE_ENDIAN) {
    out.set(new Uint8Array(src.buffer, src.byteOffset, src.byteLength), off);
    return;
  }
  const words = new Uint32Array(src.buffer, src.byteOffset, src.length);
  const dv = new DataView(out.buffer, out.byteOffset);
  for (let i = 0; i < words.length; i++) dv.setUint32(off + 4 * i, words[i], true);
}

/** A fresh Float32Array of `n` values read from `bytes` at `off` (little-endian words, bit for bit). */
function readF32(bytes: Uint8Array, off: number, n: number): Float32Array {
  const out = new Float32Array(n);
  if (LITTLE_ENDIAN) {
    new Uint8Array(out.buffer).set(bytes.subarray(off, off + 4 * n));
    return out;
  }
  const words = new Uint32Array(out.buffer);
  const dv = new DataView(bytes.buffer, bytes.byteOffset);
  for (let i = 0; i < n; i++) words[i] = dv.getUint32(off + 4 * i, true);
  return out;
}

/**
 * `e` in the binary format above (header + raw f32 words), for stores outside the process.
 * @throws ShapeError when the arrays do not match the dims.
 * @example
 * await redis.set(key, encodeVisionEmbedding(e));
 */
export function encodeVisionEmbedding(e: VisionEmbedding): Uint8Array {
  checkVisionEmbedding(e);
  const n = e.tokens * e.hidden;
  const out = new Uint8Array(HEADER_BYTES + 4 * n * (1 + e.deepstack.length));
  const dv = new DataView(out.buffer);
  out.set(MAGIC, 0);
  dv.setUint16(4, FORMAT_VERSION, true);
  dv.setUint16(6, DTYPE_F32, true);
  dv.setUint32(8, e.tokens, true);
  dv.setUint32(12, e.hidden, true);
  dv.setUint32(16, e.deepstack.length, true);
  dv.setUint32(20, 0, true);
  let off = HEADER_BYTES;
  for (const t of [e.merged, ...e.deepstack]) {
    writeF32(out, off, t);
    off += 4 * n;
  }
  return out;
}

/**
 * Reads a value written by `encodeVisionEmbedding`. The arrays are fresh copies (they do not
 * alias `bytes`).
 * @throws VisionCacheDecodeError when `bytes` is short, not this format, a newer version, or its
 *   length does not match its dims.
 */
export function decodeVisionEmbedding(bytes: Uint8Array): VisionEmbedding {
  if (bytes.length < HEADER_BYTES) throw new VisionCacheDecodeError('short', `${bytes.length} bytes, shorter than the ${HEADER_BYTES}-byte header`);
  for (let i = 0; i < 4; i++) {
    if (bytes[i] !== MAGIC[i]) throw new VisionCacheDecodeError('magic', 'no "VLVE" magic: not a vision embedding');
  }
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = dv.getUint16(4, true);
  if (version !== FORMAT_VERSION) throw new VisionCacheDecodeError('version', `format version ${version}, this build reads ${FORMAT_VERSION}`);
  const dtype = dv.getUint16(6, true);
  if (dtype !== DTYPE_F32) throw new VisionCacheDecodeError('dtype', `dtype ${dtype}, this build reads ${DTYPE_F32} (f32)`);
  const tokens = dv.getUint32(8, true);
  const hidden = dv.getUint32(12, true);
  const levels = dv.getUint32(16, true);
  const n = tokens * hidden;
  // Exact while it could match: any real length is < 2^53, and so is a product that equals it.
  const expected = HEADER_BYTES + 4 * n * (1 + levels);
  if (expected !== bytes.length) {
    throw new VisionCacheDecodeError('length', `${bytes.length} bytes, but [${tokens}, ${hidden}] × ${1 + levels} f32 tensors need ${expected}`);
  }
  let off = HEADER_BYTES;
  const merged = readF32(bytes, off, n);
  const deepstack: Float32Array[] = [];
  for (let l = 0; l < levels; l++) {
    off += 4 * n;
    deepstack.push(readF32(bytes, off, n));
  }
  return { tokens, hidden, merged, deepstack };
}

// ---------------------------------------------------------------------------------------------
// In-process cache

export interface MemoryVisionCacheOptions {
  /** Bytes of f32 data to keep; least recently used values go first (default 512 MiB). */
  maxBytes?: number;
  /** A value expires this long after it was set; reads do not extend it (default 1 h). */
  ttlMs?: number;
  /** Clock in milliseconds (default `Date.now`); tests inject one. */
  now?: () => number;
}

interface MemoryEntry {
  value: VisionEmbedding;
  bytes: number;
  expiresAt: number;
}

/**
 * The default cache: in this process, least recently used out first once `maxBytes` is reached,
 * every value gone `ttlMs` after it was set. A value larger than `maxBytes` is not stored.
 * Values are kept by reference (no copy).
 *
 * @example
 * const cache = new MemoryVisionCache({ maxBytes: 256 * 2 ** 20, ttlMs: 10 * 60_000 });
 * const key = await visionCacheKey({ modelId, bytes, params });
 * const emb = (await cache.get(key)) ?? (await runVisionTower(image));
 * await cache.set(key, emb);
 */
export class MemoryVisionCache implements VisionCache {
  readonly maxBytes: number;
  readonly ttlMs: number;
  private readonly now: () => number;
  /** Insertion order is recency order: the first entry is the least recently used. */
  private readonly entries = new Map<string, MemoryEntry>();
  private heldBytes = 0;
  private hits = 0;
  private misses = 0;

  constructor(o: MemoryVisionCacheOptions = {}) {
    this.maxBytes = o.maxBytes ?? 512 * 2 ** 20;
    this.ttlMs = o.ttlMs ?? 3_600_000;
    this.now = o.now ?? Date.now;
    if (!(this.maxBytes >= 0)) throw new RangeError(`maxBytes must be a number ≥ 0, got ${o.maxBytes}`);
    if (!(this.ttlMs > 0)) throw new RangeError(`ttlMs must be a number > 0, got ${o.ttlMs}`);
  }

  get stats(): VisionCacheStats {
    this.dropExpired();
    return { hits: this.hits, misses: this.misses, errors: 0, entries: this.entries.size, bytes: this.heldBytes };
  }

  async get(key: string): Promise<VisionEmbedding | null> {
    const e = this.entries.get(key);
    if (!e || e.expiresAt <= this.now()) {
      if (e) this.remove(key, e);
      this.misses++;
      return null;
    }
    // Most recently used: move to the end.
    this.entries.delete(key);
    this.entries.set(key, e);
    this.hits++;
    return e.value;
  }

  async set(key: string, value: VisionEmbedding): Promise<void> {
    checkVisionEmbedding(value);
    const old = this.entries.get(key);
    if (old) this.remove(key, old);
    const bytes = visionEmbeddingBytes(value);
    if (bytes > this.maxBytes) return;
    this.dropExpired();
    for (const [k, e] of this.entries) {
      if (this.heldBytes + bytes <= this.maxBytes) break;
      this.remove(k, e);
    }
    this.entries.set(key, { value, bytes, expiresAt: this.now() + this.ttlMs });
    this.heldBytes += bytes;
  }

  async close(): Promise<void> {
    this.entries.clear();
    this.heldBytes = 0;
  }

  private remove(key: string, e: MemoryEntry): void {
    this.entries.delete(key);
    this.heldBytes -= e.bytes;
  }

  /** Expiry does not follow recency order (reads move an entry, not its deadline): scan all. */
  private dropExpired(): void {
    const now = this.now();
    for (const [k, e] of this.entries) if (e.expiresAt <= now) this.remove(k, e);
  }
}
