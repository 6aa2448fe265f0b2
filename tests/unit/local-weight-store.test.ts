/**
 * The browser engine's weight store over an in-memory Cache API stand-in and an in-memory HTTP
 * server with Range support: download once in pieces, no request on the second load, resume
 * after a failure, a changed file, servers without Range, quota errors, evicted pieces, aborts.
 */
import { describe, expect, it } from 'vitest';
import { ModelFetchError, StorageQuotaError, type StorageEstimateInfo } from '../../web/src/local/errors.ts';
import { downloadModelFiles, modelDirectory, resolveModelFiles } from '../../web/src/local/model-files.ts';
import type { LoadProgress } from '../../web/src/local/progress.ts';
import { type CacheLike, chunkKey, type FileRecord, type PresentRecord, recordKey, WeightStore } from '../../web/src/local/weight-store.ts';
import { readText } from '../../shared/io/byte-source.ts';
import { readSafetensorsHeader } from '../../shared/io/safetensors.ts';

const BASE = 'http://models.test/models/tiny/';

/** A Cache API stand-in: a Map of bodies, with an optional byte quota enforced like Chromium's (QuotaExceededError). */
class MemoryCache implements CacheLike {
  readonly entries = new Map<string, Uint8Array>();
  puts = 0;
  constructor(private readonly quotaBytes = Number.POSITIVE_INFINITY) {}
  get bytes(): number {
    let n = 0;
    for (const v of this.entries.values()) n += v.byteLength;
    return n;
  }
  async match(key: string): Promise<Response | undefined> {
    const v = this.entries.get(key);
    return v ? new Response(v.slice() as Uint8Array<ArrayBuffer>) : undefined;
  }
  async put(key: string, res: Response): Promise<void> {
    const body = new Uint8Array(await res.arrayBuffer());
    const old = this.entries.get(key)?.byteLength ?? 0;
    if (this.bytes - old + body.byteLength > this.quotaBytes) throw new DOMException('Quota exceeded.', 'QuotaExceededError');
    this.entries.set(key, body);
    this.puts++;
  }
  async delete(key: string): Promise<boolean> {
    return this.entries.delete(key);
  }
}

interface ServedFile {
  bytes: Uint8Array;
  etag: string;
}

/** An HTTP server in memory: GET with single Range requests, ETag, 404s, and faults on demand. */
class FakeServer {
  readonly files = new Map<string, ServedFile>();
  readonly log: { file: string; range: string | null }[] = [];
  /** Answer 503 once for the request of this file whose range starts here. */
  failOnce: { file: string; start: number } | null = null;
  /** Answer every request in full (200), as a server without Range support does. */
  ignoreRange = false;
  /** Delay each answer (ms), to leave requests in flight. */
  delayMs = 0;

  set(file: string, bytes: Uint8Array, etag = `"${file}-1"`): void {
    this.files.set(file, { bytes, etag });
  }

  fetch = async (url: string, init?: RequestInit): Promise<Response> => {
    const file = decodeURIComponent(new URL(url).pathname.slice(new URL(BASE).pathname.length));
    const range = new Headers(init?.headers).get('Range');
    this.log.push({ file, range });
    if (this.delayMs) await new Promise((r) => setTimeout(r, this.delayMs));
    init?.signal?.throwIfAborted();
    const f = this.files.get(file);
    if (!f) return new Response('not found', { status: 404 });
    const m = /^bytes=(\d+)-(\d+)$/.exec(range ?? '');
    if (this.failOnce && this.failOnce.file === file && m && Number(m[1]) === this.failOnce.start) {
      this.failOnce = null;
      return new Response('unavailable', { status: 503, statusText: 'Service Unavailable' });
    }
    const headers = { ETag: f.etag, 'Accept-Ranges': 'bytes' };
    if (!m || this.ignoreRange) {
      return new Response(f.bytes.slice() as Uint8Array<ArrayBuffer>, { status: 200, headers: { ...headers, 'Content-Length': String(f.bytes.byteLength) } });
    }
    const start = Number(m[1]);
    const end = Math.min(Number(m[2]), f.bytes.byteLength - 1);
    if (start >= f.bytes.byteLength) return new Response(null, { status: 416, headers: { 'Content-Range': `bytes */${f.bytes.byteLength}` } });
    return new Response(f.bytes.slice(start, end + 1) as Uint8Array<ArrayBuffer>, {
      status: 206,
      headers: { ...headers, 'Content-Range': `bytes ${start}-${end}/${f.bytes.byteLength}` },
    });
  };

  ranges(file: string): (string | null)[] {
    return this.log.filter((l) => l.file === file).map((l) => l.range);
  }
}

function randomBytes(n: number, seed = 1): Uint8Array {
  const out = new Uint8Array(n);
  let s = seed;
  for (let i = 0; i < n; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    out[i] = s >>> 24;
  }
  return out;
}

const roomy = async (): Promise<StorageEstimateInfo> => ({ usageBytes: 0, quotaBytes: 1e12, persisted: true });
const url = (file: string) => `${BASE}${file}`;

function setup(o: { chunkBytes?: number; cache?: MemoryCache; server?: FakeServer; estimate?: () => Promise<StorageEstimateInfo>; concurrency?: number } = {}) {
  const cache = o.cache ?? new MemoryCache();
  const server = o.server ?? new FakeServer();
  const store = new WeightStore({ cache, fetch: server.fetch, estimate: o.estimate ?? roomy, chunkBytes: o.chunkBytes ?? 1000, concurrency: o.concurrency ?? 3 });
  return { cache, server, store };
}

describe('WeightStore', () => {
  it('downloads a file once in Range pieces and reads any range back from the cache', async () => {
    const { server, store, cache } = setup();
    const data = randomBytes(3500);
    server.set('w.bin', data);
    const rec = await store.resolve(url('w.bin'));
    expect(rec).toMatchObject({ state: 'partial', size: 3500, etag: '"w.bin-1"', chunkBytes: 1000, ranges: true });
    const seen: LoadProgress[] = [];
    const [done] = await store.download([rec], { onProgress: (p) => seen.push(p) });
    expect(done.state).toBe('complete');
    expect(server.ranges('w.bin').sort()).toEqual(['bytes=0-0', 'bytes=0-999', 'bytes=1000-1999', 'bytes=2000-2999', 'bytes=3000-3499'].sort());
    expect(seen.at(-1)).toMatchObject({ phase: 'download', loadedBytes: 3500, totalBytes: 3500, etaSeconds: 0 });
    // 4 pieces + the record
    expect([...cache.entries.keys()].filter((k) => k.includes('vlmesh-part='))).toHaveLength(4);

    const src = store.source(done as PresentRecord);
    expect(src.size).toBe(3500);
    for (const [o, n] of [[0, 3500], [990, 25], [1999, 2], [3000, 500], [17, 0]] as const) {
      expect(await src.read(o, n)).toEqual(data.slice(o, o + n));
    }
    await expect(src.read(3400, 101)).rejects.toThrow(/past the end/);
    expect(server.log).toHaveLength(5); // reads made no request
  });

  it('makes no request at all the second time: the complete record is trusted', async () => {
    const first = setup();
    first.server.set('w.bin', randomBytes(2500));
    await first.store.download([await first.store.resolve(url('w.bin'))]);
    const again = setup({ cache: first.cache });
    const rec = await again.store.resolve(url('w.bin'));
    expect(rec.state).toBe('complete');
    const seen: LoadProgress[] = [];
    await again.store.download([rec], { onProgress: (p) => seen.push(p) });
    expect(again.server.log).toEqual([]);
    expect(seen.at(-1)).toMatchObject({ loadedBytes: 2500, totalBytes: 2500, etaSeconds: 0 });
  });

  it('resumes an interrupted download: stored pieces are not fetched again, nor the file probed', async () => {
    const { server, store, cache } = setup({ concurrency: 1 });
    const data = randomBytes(5000, 7);
    server.set('w.bin', data);
    server.failOnce = { file: 'w.bin', start: 3000 };
    const rec = await store.resolve(url('w.bin'));
    const err = await store.download([rec]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ModelFetchError);
    expect(err).toMatchObject({ code: 'MODEL_FETCH', status: 503 });
    expect(await store.storedChunks(rec as PresentRecord)).toEqual([true, true, true, false, false]);

    // "Reload": a new store over the same cache.
    const resumed = new WeightStore({ cache, fetch: server.fetch, estimate: roomy, chunkBytes: 1000 });
    server.log.length = 0;
    const again = await resumed.resolve(url('w.bin'));
    expect(again.state).toBe('partial');
    const seen: LoadProgress[] = [];
    const [done] = await resumed.download([again], { onProgress: (p) => seen.push(p) });
    expect(server.ranges('w.bin')).toEqual(['bytes=3000-3999', 'bytes=4000-4999']);
    expect(seen[0]).toMatchObject({ loadedBytes: 3000, totalBytes: 5000 });
    expect(await resumed.source(done as PresentRecord).read(0, 5000)).toEqual(data);
  });

  it('drops the stored pieces of a file that changed on the server, then downloads the new one', async () => {
    const { server, store } = setup({ concurrency: 1 });
    server.set('w.bin', randomBytes(3000, 1));
    server.failOnce = { file: 'w.bin', start: 2000 };
    const rec = (await store.resolve(url('w.bin'))) as PresentRecord;
    await expect(store.download([rec])).rejects.toThrow(ModelFetchError);
    expect(await store.storedChunks(rec)).toEqual([true, true, false]);

    const fresh = randomBytes(3000, 2);
    server.set('w.bin', fresh, '"w.bin-2"');
    await expect(store.download([rec])).rejects.toThrow(/changed on the server/);
    expect(await store.storedChunks(rec)).toEqual([false, false, false]);
    expect(await store.record(url('w.bin'))).toBeNull();

    const rec2 = await store.resolve(url('w.bin'));
    expect(rec2).toMatchObject({ etag: '"w.bin-2"' });
    const [done] = await store.download([rec2]);
    expect(await store.source(done as PresentRecord).read(0, 3000)).toEqual(fresh);
  });

  it('takes a server that ignores Range: one GET, stored in the same pieces', async () => {
    const { server, store } = setup();
    const data = randomBytes(2300, 3);
    server.set('w.bin', data);
    server.ignoreRange = true;
    const rec = await store.resolve(url('w.bin'));
    expect(rec).toMatchObject({ state: 'partial', size: 2300, ranges: false });
    const [done] = await store.download([rec]);
    expect(server.ranges('w.bin')).toEqual(['bytes=0-0', null]);
    expect(await store.storedChunks(done as PresentRecord)).toEqual([true, true, true]);
    expect(await store.source(done as PresentRecord).read(950, 1200)).toEqual(data.slice(950, 2150));
  });

  it('remembers a missing file: the next resolve asks nothing', async () => {
    const { server, store } = setup();
    expect(await store.resolve(url('absent.json'))).toMatchObject({ state: 'missing' });
    server.log.length = 0;
    expect(await store.resolve(url('absent.json'))).toMatchObject({ state: 'missing' });
    expect(server.log).toEqual([]);
  });

  it('turns a QuotaExceededError of the cache into a StorageQuotaError with the numbers', async () => {
    const estimate = async (): Promise<StorageEstimateInfo> => ({ usageBytes: 1_200_000, quotaBytes: 50_000_000_000, persisted: false });
    const { server, store } = setup({ cache: new MemoryCache(2500), estimate, concurrency: 1 });
    server.set('w.bin', randomBytes(6000));
    const rec = await store.resolve(url('w.bin'));
    const err = (await store.download([rec]).catch((e: unknown) => e)) as StorageQuotaError;
    expect(err).toBeInstanceOf(StorageQuotaError);
    expect(err.code).toBe('STORAGE_QUOTA');
    // Two pieces fit (plus the record), the third does not: 4000 bytes were still to store.
    expect(err.neededBytes).toBe(4000);
    expect(err).toMatchObject({ usageBytes: 1_200_000, quotaBytes: 50_000_000_000, persisted: false });
    expect(err.message).toContain('it needs 4.00 KB more');
    expect(err.message).toContain('although it reports 50.0 GB free');
    expect(err.message).toContain('allow this site to store data persistently');
  });

  it('refuses up front when the estimate leaves too little room, before fetching any piece', async () => {
    const estimate = async (): Promise<StorageEstimateInfo> => ({ usageBytes: 9_000, quotaBytes: 10_000, persisted: true });
    const { server, store } = setup({ estimate });
    server.set('w.bin', randomBytes(4000));
    const rec = await store.resolve(url('w.bin'));
    const err = (await store.download([rec]).catch((e: unknown) => e)) as StorageQuotaError;
    expect(err).toBeInstanceOf(StorageQuotaError);
    expect(err).toMatchObject({ neededBytes: 4000, availableBytes: 1000 });
    expect(err.message).toBe(
      'Not enough browser storage for the model: it needs 4.00 KB more, but this site may store only 1.00 KB more (9.00 KB used of a 10.0 KB quota). ' +
        'Free disk space or clear other site data — or use the server engine.',
    );
    expect(server.ranges('w.bin')).toEqual(['bytes=0-0']);
  });

  it('fetches a piece evicted from the cache again and stores it back', async () => {
    const { server, store, cache } = setup();
    const data = randomBytes(2500, 9);
    server.set('w.bin', data);
    const [done] = (await store.download([await store.resolve(url('w.bin'))])) as PresentRecord[];
    cache.entries.delete(chunkKey(done, 1));
    server.log.length = 0;
    expect(await store.source(done).read(900, 300)).toEqual(data.slice(900, 1200));
    expect(server.ranges('w.bin')).toEqual(['bytes=1000-1999']);
    expect(cache.entries.has(chunkKey(done, 1))).toBe(true);
  });

  it("peeks at a file that is not stored with exact Range reads, storing nothing ('peek')", async () => {
    const { server, store, cache } = setup({ chunkBytes: 1 << 20 });
    const data = randomBytes(5000, 4);
    server.set('w.bin', data);
    const rec = (await store.resolve(url('w.bin'))) as PresentRecord;
    const src = store.source(rec, { missing: 'peek' });
    expect(await src.read(8, 100)).toEqual(data.slice(8, 108));
    expect(server.ranges('w.bin')).toEqual(['bytes=0-0', 'bytes=8-107']);
    expect([...cache.entries.keys()].some((k) => k.includes('vlmesh-part='))).toBe(false);
  });

  it('adopts its own piece size for a file probed by another store but not started', async () => {
    const cache = new MemoryCache();
    const server = new FakeServer();
    server.set('w.bin', randomBytes(3000));
    const checker = new WeightStore({ cache, fetch: server.fetch, estimate: roomy }); // 16 MiB pieces
    expect(await checker.resolve(url('w.bin'))).toMatchObject({ chunkBytes: 16 * 2 ** 20 });
    const loader = new WeightStore({ cache, fetch: server.fetch, estimate: roomy, chunkBytes: 1000 });
    const [done] = await loader.download([await loader.resolve(url('w.bin'))]);
    expect(done).toMatchObject({ state: 'complete', chunkBytes: 1000 });
    expect(server.ranges('w.bin')).toHaveLength(4); // probe + 3 pieces
  });

  it('stops on abort, keeping what was stored', async () => {
    const { server, store, cache } = setup({ concurrency: 1 });
    server.set('w.bin', randomBytes(10_000));
    server.delayMs = 40;
    const rec = await store.resolve(url('w.bin'));
    const ac = new AbortController();
    const p = store.download([rec], {
      signal: ac.signal,
      onProgress: (r) => {
        if (r.loadedBytes >= 3000) ac.abort(new DOMException('stop', 'AbortError'));
      },
    });
    await expect(p).rejects.toMatchObject({ name: 'AbortError' });
    const stored = (await store.storedChunks(rec as PresentRecord)).filter(Boolean).length;
    expect(stored).toBeGreaterThanOrEqual(2);
    expect(stored).toBeLessThan(10);
    expect(cache.entries.has(recordKey(url('w.bin')))).toBe(true);
  });
});

describe('model directory over the store', () => {
  /** A tiny safetensors file: one F32 tensor of `n` elements. */
  function safetensors(name: string, n: number): Uint8Array {
    const header = new TextEncoder().encode(JSON.stringify({ [name]: { dtype: 'F32', shape: [n], data_offsets: [0, n * 4] } }));
    const out = new Uint8Array(8 + header.byteLength + n * 4);
    new DataView(out.buffer).setBigUint64(0, BigInt(header.byteLength), true);
    out.set(header, 8);
    return out;
  }

  it('finds the shards of a sharded checkpoint, downloads everything, and opens files by name', async () => {
    const { server, store } = setup({ chunkBytes: 64 });
    server.set('config.json', new TextEncoder().encode('{"model_type":"qwen3_vl"}'));
    server.set('tokenizer.json', new TextEncoder().encode('{"model":{}}'));
    server.set(
      'model.safetensors.index.json',
      new TextEncoder().encode(JSON.stringify({ weight_map: { a: 'model-00001-of-00002.safetensors', b: 'model-00002-of-00002.safetensors' } })),
    );
    server.set('model-00001-of-00002.safetensors', safetensors('a', 40));
    server.set('model-00002-of-00002.safetensors', safetensors('b', 30));
    const files = await resolveModelFiles(store, BASE);
    expect(files.weightFiles).toEqual(['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors']);
    expect(files.records.get('chat_template.json')?.state).toBe('missing');

    const done = await downloadModelFiles(store, files);
    for (const r of done.records.values()) expect(['complete', 'missing']).toContain((r as FileRecord).state);
    const dir = modelDirectory(store, done);
    expect(await dir.open('chat_template.json')).toBeNull();
    const config = await dir.open('config.json');
    expect(config && (await readText(config))).toBe('{"model_type":"qwen3_vl"}');
    const shard = await dir.open('model-00002-of-00002.safetensors');
    expect(shard && (await readSafetensorsHeader(shard)).tensors[0]).toMatchObject({ name: 'b', shape: [30] });

    // Second time: nothing asked of the server.
    server.log.length = 0;
    const again = await downloadModelFiles(store, await resolveModelFiles(store, BASE));
    expect(again.weightFiles).toEqual(files.weightFiles);
    expect(server.log).toEqual([]);
  });

  it('says plainly when the URL is not a model directory', async () => {
    const { store } = setup();
    await expect(resolveModelFiles(store, BASE)).rejects.toThrow(/has no config\.json: it is not a model directory/);
  });
});
