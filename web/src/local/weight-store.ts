/**
 * The weight store: model files downloaded once, in Range pieces, into the Cache API, and read
 * back as `ByteSource`s (what the checkpoint reader and the upload take).
 *
 * Cache entries, all keyed by the file's URL plus a marker in the query:
 *
 *   <url>?vlmesh-meta=1                                   the file's record (JSON, below)
 *   <url>?vlmesh-part=<i>&vlmesh-version=<size:chunk:etag:last-modified>   bytes [i·chunk, min(size, (i+1)·chunk))
 *
 *   record: { state: 'missing' }                          the server answered 404 (optional files)
 *         | { state: 'partial' | 'complete', size, etag, lastModified, chunkBytes, ranges }
 *
 * First contact with a file is a one-byte Range request (`bytes=0-0`): it gives the size and the
 * validators (ETag, Last-Modified) without downloading. Chunks are then fetched with up to
 * `concurrency` Range requests at once, across files, and each is stored as soon as it arrives,
 * so a reload resumes where the last one stopped (chunks already stored are skipped). A chunk
 * whose validators differ from the record's means the file changed on the server: its stale
 * chunks are dropped. A `complete` record is trusted as is: a second load makes no request.
 *
 * A server that ignores Range gets one plain GET per file, cut into the same chunks.
 * A `QuotaExceededError` from the cache becomes a `StorageQuotaError` saying how many bytes were
 * still needed and what `navigator.storage.estimate()` reports; the same check runs before the
 * download starts. Everything platform-specific (the cache, fetch, the estimate) is injected, so
 * the bookkeeping is unit-tested in Node.
 */
import { type ByteSource, checkReadRange } from '../../../shared/io/byte-source.ts';
import { ByteSourceError } from '../../../shared/io/errors.ts';
import { ModelFetchError, type StorageEstimateInfo, StorageQuotaError } from './errors.ts';
import { type LoadProgress, PhaseProgress } from './progress.ts';

/** Default download piece: 16 MiB (a few hundred entries for a multi-GB checkpoint). */
export const DEFAULT_CHUNK_BYTES = 16 * 2 ** 20;
/** The Cache API cache the browser engine keeps model files in. */
export const MODEL_CACHE_NAME = 'vlmesh-model-files-v1';

/** The part of the Cache API the store uses (a real `Cache` fits). */
export interface CacheLike {
  match(key: string): Promise<Response | undefined>;
  put(key: string, response: Response): Promise<void>;
  delete(key: string): Promise<boolean>;
}

/** `fetch`, or anything that answers like it. */
export type FetchLike = (url: string, init?: RequestInit) => Promise<Response>;

/** What the store knows about one remote file. */
export type FileRecord =
  | { v: 1; url: string; state: 'missing' }
  | {
      v: 1;
      url: string;
      state: 'partial' | 'complete';
      /** Bytes; null only while a server that ignores Range has not sent the whole file yet. */
      size: number | null;
      etag: string | null;
      lastModified: string | null;
      chunkBytes: number;
      /** False when the server ignores Range (the file then comes in one GET). */
      ranges: boolean;
    };

/** A record of a file that exists. */
export type PresentRecord = Extract<FileRecord, { state: 'partial' | 'complete' }>;

export interface WeightStoreOptions {
  cache: CacheLike;
  /** Default: the global fetch. */
  fetch?: FetchLike;
  /** This site's storage usage and quota (default: navigator.storage.estimate when present). */
  estimate?: () => Promise<StorageEstimateInfo>;
  /** Piece size for new downloads (default 16 MiB). Files already started keep theirs. */
  chunkBytes?: number;
  /** Range requests in flight at once (default 4). */
  concurrency?: number;
  /** Milliseconds clock for progress (default performance.now). */
  now?: () => number;
}

export interface DownloadOptions {
  onProgress?: (p: LoadProgress) => void;
  signal?: AbortSignal;
}

/** How a `ByteSource` of the store gets a chunk that is not stored. */
export type MissingChunkPolicy =
  /** Download the whole chunk and store it (the default: heals an evicted entry). */
  | 'store'
  /** Fetch just the bytes asked for with a Range request; store nothing (a quick look at a header). */
  | 'peek';

/** The file changed on the server while this store held part of it. */
class FileChangedError extends Error {
  constructor(
    readonly url: string,
    message: string,
  ) {
    super(message);
  }
}

const isQuotaError = (e: unknown): boolean =>
  typeof e === 'object' && e !== null && ((e as { name?: unknown }).name === 'QuotaExceededError' || (e as { code?: unknown }).code === 22);

/** The estimate from `navigator.storage`, or unknowns where the platform has none. */
export async function browserStorageEstimate(): Promise<StorageEstimateInfo> {
  const storage = (globalThis as { navigator?: { storage?: StorageManager } }).navigator?.storage;
  let usageBytes: number | null = null;
  let quotaBytes: number | null = null;
  let persisted: boolean | null = null;
  try {
    const e = await storage?.estimate?.();
    usageBytes = typeof e?.usage === 'number' ? e.usage : null;
    quotaBytes = typeof e?.quota === 'number' ? e.quota : null;
  } catch {
    // No estimate: the error message says so.
  }
  try {
    persisted = typeof storage?.persisted === 'function' ? await storage.persisted() : null;
  } catch {
    persisted = null;
  }
  return { usageBytes, quotaBytes, persisted };
}

function withQuery(url: string, params: Record<string, string>): string {
  const u = new URL(url);
  for (const [k, v] of Object.entries(params)) u.searchParams.set(k, v);
  return u.href;
}

/** The cache key of a file's record. */
export function recordKey(url: string): string {
  return withQuery(url, { 'vlmesh-meta': '1' });
}

/** The cache key of chunk `index` of a file (the version ties it to the size and validators). */
export function chunkKey(rec: PresentRecord, index: number): string {
  const version = `${rec.size ?? ''}:${rec.chunkBytes}:${rec.etag ?? ''}:${rec.lastModified ?? ''}`;
  return withQuery(rec.url, { 'vlmesh-part': String(index), 'vlmesh-version': version });
}

/** Number of chunks of a file (0 for an empty one). */
export function chunkCount(rec: PresentRecord): number {
  return rec.size === null ? 0 : Math.ceil(rec.size / rec.chunkBytes);
}

/** Byte range `[start, end)` of chunk `index`. */
export function chunkRange(rec: PresentRecord, index: number): [number, number] {
  const start = index * rec.chunkBytes;
  return [start, Math.min(rec.size ?? 0, start + rec.chunkBytes)];
}

/** The file name at the end of a URL (what error messages and byte sources call it). */
export function fileNameOf(url: string): string {
  const path = new URL(url).pathname;
  return decodeURIComponent(path.slice(path.lastIndexOf('/') + 1)) || url;
}

/** `bytes a-b/size` → numbers; null when malformed (`*` sizes included). */
export function parseContentRange(v: string | null): { start: number; end: number; size: number } | null {
  const m = /^bytes\s+(\d+)-(\d+)\/(\d+)$/.exec(v?.trim() ?? '');
  if (!m) return null;
  return { start: Number(m[1]), end: Number(m[2]), size: Number(m[3]) };
}

/** Reads a response body to the end, reporting each piece; `expected` bytes exactly when given. */
async function readBody(url: string, res: Response, expected: number | null, onBytes: (n: number) => void): Promise<Uint8Array> {
  const reader = res.body?.getReader();
  if (!reader) return new Uint8Array(0);
  const parts: Uint8Array[] = [];
  let total = 0;
  let out: Uint8Array | null = expected !== null ? new Uint8Array(expected) : null;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (out) {
      if (total + value.byteLength > out.byteLength) {
        await reader.cancel().catch(() => undefined);
        throw new ModelFetchError(url, res.status, `${url}: the server sent more than the ${expected} bytes asked for`);
      }
      out.set(value, total);
    } else {
      parts.push(value);
    }
    total += value.byteLength;
    onBytes(value.byteLength);
  }
  if (out) {
    if (total !== out.byteLength) {
      throw new ModelFetchError(url, res.status, `${url}: the connection ended after ${total} of ${expected} bytes`);
    }
    return out;
  }
  out = new Uint8Array(total);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.byteLength;
  }
  return out;
}

/**
 * Model files in the Cache API, downloaded in resumable Range pieces.
 *
 * @example
 * const store = new WeightStore({ cache: await caches.open(MODEL_CACHE_NAME) });
 * const rec = await store.resolve(new URL('model.safetensors', base).href);
 * await store.download([rec], { onProgress: console.log });
 * const src = store.source(rec); // a ByteSource over the stored bytes
 */
export class WeightStore {
  private readonly cache: CacheLike;
  private readonly fetchFn: FetchLike;
  private readonly estimateFn: () => Promise<StorageEstimateInfo>;
  readonly chunkBytes: number;
  private readonly concurrency: number;
  private readonly now: () => number;

  constructor(o: WeightStoreOptions) {
    this.cache = o.cache;
    this.fetchFn = o.fetch ?? ((url, init) => globalThis.fetch(url, init));
    this.estimateFn = o.estimate ?? browserStorageEstimate;
    this.chunkBytes = o.chunkBytes ?? DEFAULT_CHUNK_BYTES;
    this.concurrency = Math.max(1, Math.floor(o.concurrency ?? 4));
    this.now = o.now ?? (() => performance.now());
    if (!Number.isSafeInteger(this.chunkBytes) || this.chunkBytes < 1) {
      throw new RangeError(`chunkBytes must be a positive integer, got ${o.chunkBytes}`);
    }
  }

  /** The stored record of `url`, or null when the store has never seen it. */
  async record(url: string): Promise<FileRecord | null> {
    const res = await this.cache.match(recordKey(url));
    if (!res) return null;
    try {
      const rec = (await res.json()) as FileRecord;
      return rec && rec.v === 1 && rec.url === url ? rec : null;
    } catch {
      return null; // unreadable: treat as unknown, it is rewritten
    }
  }

  private async writeRecord(rec: FileRecord, required: boolean, neededBytes = 0): Promise<void> {
    try {
      await this.cache.put(recordKey(rec.url), new Response(JSON.stringify(rec), { headers: { 'Content-Type': 'application/json' } }));
    } catch (e) {
      // A partial or missing record only saves a probe on the next load; a complete one must be there.
      if (!required) return;
      if (isQuotaError(e)) throw new StorageQuotaError(neededBytes, await this.estimateFn(), { cause: e });
      throw e;
    }
  }

  private async get(url: string, init: RequestInit): Promise<Response> {
    try {
      return await this.fetchFn(url, { cache: 'no-store', ...init });
    } catch (e) {
      if ((e as { name?: string })?.name === 'AbortError') throw e;
      throw new ModelFetchError(url, null, `${url}: the request failed (${(e as Error)?.message ?? e}); is the server reachable?`, { cause: e });
    }
  }

  /**
   * What `url` is: its stored record, or (first contact) what a one-byte Range request says;
   * the new record is stored. A 404 gives a `missing` record; other HTTP errors throw.
   */
  async resolve(url: string, o: { signal?: AbortSignal } = {}): Promise<FileRecord> {
    const known = await this.record(url);
    if (known) return known;
    const res = await this.get(url, { headers: { Range: 'bytes=0-0' }, signal: o.signal });
    await res.body?.cancel().catch(() => undefined);
    let rec: FileRecord;
    const etag = res.headers.get('ETag');
    const lastModified = res.headers.get('Last-Modified');
    const base = { v: 1 as const, url, etag, lastModified, chunkBytes: this.chunkBytes };
    if (res.status === 404 || res.status === 410) {
      rec = { v: 1, url, state: 'missing' };
    } else if (res.status === 206) {
      const cr = parseContentRange(res.headers.get('Content-Range'));
      if (cr?.start !== 0) {
        throw new ModelFetchError(url, 206, `${url}: the server answered a Range request without a usable Content-Range ("${res.headers.get('Content-Range')}")`);
      }
      rec = { ...base, state: cr.size === 0 ? 'complete' : 'partial', size: cr.size, ranges: true };
    } else if (res.status === 416) {
      // Only an empty file has no byte 0.
      const m = /^bytes\s+\*\/(\d+)$/.exec(res.headers.get('Content-Range')?.trim() ?? '');
      if (!m || Number(m[1]) !== 0) throw new ModelFetchError(url, 416, `${url}: the server refused the range bytes=0-0 (HTTP 416)`);
      rec = { ...base, state: 'complete', size: 0, ranges: true };
    } else if (res.status === 200) {
      // Range ignored: the length (if the body is not re-encoded) is the size.
      const len = res.headers.get('Content-Encoding') ? null : res.headers.get('Content-Length');
      const size = len !== null && /^\d+$/.test(len) ? Number(len) : null;
      rec = { ...base, state: size === 0 ? 'complete' : 'partial', size, ranges: false };
    } else {
      throw new ModelFetchError(url, res.status, `${url}: HTTP ${res.status} ${res.statusText}`.trim());
    }
    await this.writeRecord(rec, rec.state === 'complete');
    return rec;
  }

  /** Which chunks of a file are stored. */
  async storedChunks(rec: PresentRecord): Promise<boolean[]> {
    const n = chunkCount(rec);
    const out: boolean[] = [];
    for (let i = 0; i < n; i++) out.push((await this.cache.match(chunkKey(rec, i))) !== undefined);
    return out;
  }

  /** Bytes of `records` still to download (stored chunks excluded; unknown sizes count 0). */
  async missingBytes(records: readonly FileRecord[]): Promise<number> {
    let n = 0;
    for (const rec of records) {
      if (rec.state !== 'partial') continue;
      if (!rec.ranges) {
        n += rec.size ?? 0;
        continue;
      }
      const stored = await this.storedChunks(rec);
      stored.forEach((have, i) => {
        const [a, b] = chunkRange(rec, i);
        if (!have) n += b - a;
      });
    }
    return n;
  }

  private async putChunk(rec: PresentRecord, index: number, bytes: Uint8Array, neededBytes: () => number): Promise<void> {
    try {
      await this.cache.put(
        chunkKey(rec, index),
        new Response(bytes as Uint8Array<ArrayBuffer>, { headers: { 'Content-Type': 'application/octet-stream' } }),
      );
    } catch (e) {
      if (isQuotaError(e)) throw new StorageQuotaError(neededBytes(), await this.estimateFn(), { cause: e });
      throw e;
    }
  }

  /** Downloads chunk `index` with a Range request and checks that it is the file the record describes. */
  private async fetchChunk(rec: PresentRecord, index: number, signal: AbortSignal | undefined, onBytes: (n: number) => void): Promise<Uint8Array> {
    const [start, end] = chunkRange(rec, index);
    const res = await this.get(rec.url, { headers: { Range: `bytes=${start}-${end - 1}` }, signal });
    if (res.status !== 206) {
      await res.body?.cancel().catch(() => undefined);
      if (res.status === 200 || res.status === 416) throw new FileChangedError(rec.url, `${rec.url}: the server no longer serves the range it announced`);
      throw new ModelFetchError(rec.url, res.status, `${rec.url}: HTTP ${res.status} for bytes ${start}-${end - 1}`);
    }
    const cr = parseContentRange(res.headers.get('Content-Range'));
    const etag = res.headers.get('ETag');
    const lastModified = res.headers.get('Last-Modified');
    if (
      !cr ||
      cr.size !== rec.size ||
      (rec.etag !== null && etag !== null && etag !== rec.etag) ||
      (rec.etag === null && rec.lastModified !== null && lastModified !== null && lastModified !== rec.lastModified)
    ) {
      await res.body?.cancel().catch(() => undefined);
      throw new FileChangedError(rec.url, `${rec.url} changed on the server during the download`);
    }
    if (cr.start !== start || cr.end !== end - 1) {
      await res.body?.cancel().catch(() => undefined);
      throw new ModelFetchError(rec.url, 206, `${rec.url}: asked for bytes ${start}-${end - 1}, the server sent ${cr.start}-${cr.end}`);
    }
    return readBody(rec.url, res, end - start, onBytes);
  }

  /** Drops a file's record and stored chunks (a changed file, or `forget`). */
  private async dropFile(rec: FileRecord): Promise<void> {
    if (rec.state !== 'missing') {
      const n = chunkCount(rec);
      for (let i = 0; i < n; i++) await this.cache.delete(chunkKey(rec, i));
    }
    await this.cache.delete(recordKey(rec.url));
  }

  /** Removes everything stored for these URLs. */
  async forget(urls: readonly string[]): Promise<void> {
    for (const url of urls) {
      const rec = await this.record(url);
      if (rec) await this.dropFile(rec);
    }
  }

  /**
   * Downloads what is not stored yet of `records` (missing files are skipped), reporting
   * 'download' progress over all of them; chunks already stored count as done. Returns the
   * records, all `complete` (or `missing`). Aborting `signal` stops the transfers; what was
   * stored stays for the next call.
   */
  async download(records: readonly FileRecord[], o: DownloadOptions = {}): Promise<FileRecord[]> {
    const out = records.map((r) => r);
    // Plan: the chunks each file lacks.
    interface Task {
      file: number;
      index: number;
      bytes: number;
    }
    const tasks: Task[] = [];
    const wholeFiles: number[] = [];
    const remaining = new Map<number, number>();
    let total = 0;
    let stored = 0;
    for (const [file, rec] of out.entries()) {
      if (rec.state === 'missing') continue;
      total += rec.size ?? 0;
      if (rec.state === 'complete') {
        stored += rec.size ?? 0;
        continue;
      }
      if (!rec.ranges) {
        wholeFiles.push(file);
        continue;
      }
      let have = await this.storedChunks(rec);
      if (rec.chunkBytes !== this.chunkBytes && !have.some(Boolean)) {
        // Probed (by a support check) but nothing stored yet: take this store's piece size.
        const resized: PresentRecord = { ...rec, chunkBytes: this.chunkBytes };
        out[file] = resized;
        await this.writeRecord(resized, false);
        have = new Array<boolean>(chunkCount(resized)).fill(false);
      }
      const cur = out[file] as PresentRecord;
      let missing = 0;
      have.forEach((h, index) => {
        const [a, b] = chunkRange(cur, index);
        if (h) stored += b - a;
        else {
          tasks.push({ file, index, bytes: b - a });
          missing++;
        }
      });
      remaining.set(file, missing);
    }
    const progress = new PhaseProgress('download', total, o.onProgress ?? (() => undefined), { startBytes: stored, now: this.now });
    progress.update(stored);
    let needed = total - stored;
    if (needed > 0) {
      const est = await this.estimateFn();
      if (est.quotaBytes !== null && est.usageBytes !== null && est.quotaBytes - est.usageBytes < needed) throw new StorageQuotaError(needed, est);
    }

    // Files whose every chunk is stored (a download interrupted after its last chunk) are complete.
    const complete = async (file: number) => {
      const rec = out[file] as PresentRecord;
      const done: PresentRecord = { ...rec, state: 'complete' };
      await this.writeRecord(done, true, needed);
      out[file] = done;
    };
    for (const [file, missing] of remaining) if (missing === 0) await complete(file);

    const inner = new AbortController();
    const onAbort = () => inner.abort(o.signal?.reason);
    if (o.signal?.aborted) inner.abort(o.signal.reason);
    o.signal?.addEventListener('abort', onAbort, { once: true });
    let failure: unknown = null;
    const fail = (e: unknown) => {
      failure ??= e;
      inner.abort(e);
    };
    const onBytes = (n: number) => progress.add(n);

    const runChunk = async (t: Task) => {
      const rec = out[t.file] as PresentRecord;
      const bytes = await this.fetchChunk(rec, t.index, inner.signal, onBytes);
      inner.signal.throwIfAborted();
      await this.putChunk(rec, t.index, bytes, () => needed);
      needed -= t.bytes;
      const left = (remaining.get(t.file) ?? 1) - 1;
      remaining.set(t.file, left);
      if (left === 0) await complete(t.file);
    };

    const runWhole = async (file: number) => {
      const rec = out[file] as PresentRecord;
      const res = await this.get(rec.url, { signal: inner.signal });
      if (res.status !== 200) {
        await res.body?.cancel().catch(() => undefined);
        throw new ModelFetchError(rec.url, res.status, `${rec.url}: HTTP ${res.status} ${res.statusText}`.trim());
      }
      let sized: PresentRecord;
      if (rec.size === null) {
        // Unknown length (a re-encoded body): small files in practice; read it, then store it in pieces.
        const bytes = await readBody(rec.url, res, null, onBytes);
        sized = { ...rec, size: bytes.byteLength };
        for (let i = 0; i < chunkCount(sized); i++) {
          const [a, b] = chunkRange(sized, i);
          await this.putChunk(sized, i, bytes.subarray(a, b), () => needed);
        }
      } else {
        // Cut the body into chunks as it streams; each is stored as soon as it is full.
        sized = rec;
        const reader = res.body?.getReader();
        let index = 0;
        let got = 0;
        let buf = new Uint8Array(Math.min(rec.chunkBytes, rec.size));
        let fill = 0;
        while (reader) {
          const r = await reader.read();
          if (r.done) break;
          let v = r.value;
          got += v.byteLength;
          if (got > rec.size) break;
          onBytes(v.byteLength);
          while (v.byteLength) {
            const n = Math.min(v.byteLength, buf.byteLength - fill);
            buf.set(v.subarray(0, n), fill);
            fill += n;
            v = v.subarray(n);
            if (fill === buf.byteLength) {
              await this.putChunk(rec, index++, buf, () => needed);
              const [a, b] = chunkRange(rec, index);
              buf = new Uint8Array(Math.max(0, b - a));
              fill = 0;
            }
          }
        }
        if (got !== rec.size) {
          await reader?.cancel().catch(() => undefined);
          throw new FileChangedError(rec.url, `${rec.url}: expected ${rec.size} bytes, the server sent ${got} (it changed on the server)`);
        }
      }
      needed -= sized.size ?? 0;
      out[file] = sized;
      await complete(file);
    };

    const queue: (() => Promise<void>)[] = [...wholeFiles.map((f) => () => runWhole(f)), ...tasks.map((t) => () => runChunk(t))];
    const worker = async () => {
      for (;;) {
        if (inner.signal.aborted) return;
        const job = queue.shift();
        if (!job) return;
        try {
          await job();
        } catch (e) {
          fail(e);
          return;
        }
      }
    };
    try {
      await Promise.all(Array.from({ length: Math.min(this.concurrency, queue.length) }, worker));
    } finally {
      o.signal?.removeEventListener('abort', onAbort);
    }
    if (failure instanceof FileChangedError) {
      // Its stored pieces are useless: drop them so the next attempt starts the file afresh.
      const changed = out.find((r) => r.url === (failure as FileChangedError).url);
      if (changed) await this.dropFile(changed).catch(() => undefined);
      throw new ModelFetchError(failure.url, null, `${failure.message}; load again to download it anew`, { cause: failure });
    }
    if (failure) throw failure;
    if (o.signal?.aborted) throw o.signal.reason ?? new DOMException('the download was aborted', 'AbortError');
    progress.finish();
    return out;
  }

  /**
   * A `ByteSource` over a file: stored chunks are read from the cache (a slice of the stored
   * blob, never the whole file in memory); a chunk that is not stored is fetched as `missing`
   * says. The file must exist (`partial` or `complete` with a known size).
   */
  source(rec: PresentRecord, o: { name?: string; missing?: MissingChunkPolicy } = {}): ByteSource {
    if (rec.size === null) throw new ByteSourceError(rec.url, `${rec.url}: its size is not known until it is downloaded`);
    const policy = o.missing ?? 'store';
    const name = o.name ?? fileNameOf(rec.url);
    // A few recent chunks' blobs (handles onto the cache entries, not their bytes).
    const blobs = new Map<number, Blob>();
    const blobOf = async (index: number): Promise<Blob | null> => {
      const hit = blobs.get(index);
      if (hit) {
        blobs.delete(index);
        blobs.set(index, hit);
        return hit;
      }
      let res = await this.cache.match(chunkKey(rec, index));
      if (!res && policy === 'store') {
        const bytes = await this.fetchChunk(rec, index, undefined, () => undefined).catch((e: unknown) => {
          throw new ByteSourceError(name, `${name}: chunk ${index} is not stored and could not be fetched again: ${(e as Error)?.message ?? e}`, { cause: e });
        });
        await this.putChunk(rec, index, bytes, () => bytes.byteLength);
        res = new Response(bytes as Uint8Array<ArrayBuffer>);
      }
      if (!res) return null;
      const blob = await res.blob();
      blobs.set(index, blob);
      if (blobs.size > 4) blobs.delete(blobs.keys().next().value as number);
      return blob;
    };
    const src: ByteSource = {
      name,
      size: rec.size,
      read: async (offset: number, length: number): Promise<Uint8Array> => {
        checkReadRange(src, offset, length);
        const out = new Uint8Array(length);
        let pos = offset;
        while (pos < offset + length) {
          const index = Math.floor(pos / rec.chunkBytes);
          const [cs, ce] = chunkRange(rec, index);
          const stop = Math.min(ce, offset + length);
          const blob = await blobOf(index);
          let piece: Uint8Array;
          if (blob) {
            piece = new Uint8Array(await blob.slice(pos - cs, stop - cs).arrayBuffer());
          } else {
            const res = await this.get(rec.url, { headers: { Range: `bytes=${pos}-${stop - 1}` } });
            if (res.status !== 206) {
              await res.body?.cancel().catch(() => undefined);
              throw new ByteSourceError(name, `${name}: HTTP ${res.status} for bytes ${pos}-${stop - 1}`);
            }
            piece = await readBody(rec.url, res, stop - pos, () => undefined);
          }
          if (piece.byteLength !== stop - pos) {
            throw new ByteSourceError(name, `${name}: the stored chunk ${index} is shorter than it should be (cache damaged?)`);
          }
          out.set(piece, pos - offset);
          pos = stop;
        }
        return out;
      },
      close: async () => {
        blobs.clear();
      },
    };
    return src;
  }
}
