/**
 * The engine worker (a module Worker, exposed with comlink): the model runs here, on
 * `navigator.gpu`, so the page stays responsive while it downloads, uploads and generates.
 *
 * `open` creates the GPU context first (no adapter → fail before downloading gigabytes), then
 * downloads the model files into the weight store (or finds them there), uploads the weights,
 * and starts a `LocalEngine` (continuous batching, paged KV cache, prefix cache) with the
 * browser's image decoders. Each phase reports progress. See protocol.ts for the messages.
 */
import * as Comlink from 'comlink';
import type { EngineStats } from '../../../shared/engine/engine.ts';
import { LocalEngine } from '../../../shared/engine/local-engine.ts';
import { MemoryVisionCache } from '../../../shared/engine/vision-cache.ts';
import { createGpuContext, type GpuContext } from '../../../shared/gpu/context.ts';
import { BrowserImageDecoder } from '../../../shared/io/image/decode-browser.ts';
import { PngImageDecoder } from '../../../shared/io/image/decode.ts';
import { LocalEngineUnsupportedError, serializeError, toResult, type WorkerResult } from './errors.ts';
import { downloadModelFiles, modelDirectory, modelNameOf, resolveModelFiles } from './model-files.ts';
import { type LoadedModel, loadModel } from './model-loader.ts';
import { type LoadProgress, PhaseProgress } from './progress.ts';
import type { OpenedInfo, StreamMessage, WireRequest, WorkerOpenOptions } from './protocol.ts';
import { openModelCache } from './support.ts';
import { WeightStore } from './weight-store.ts';

/** Default KV cache of a tab: 512 MiB (the engine takes less when fewer tokens suffice). */
const DEFAULT_KV_CACHE_BYTES = 512 * 2 ** 20;

let ctx: GpuContext | null = null;
let loaded: LoadedModel | null = null;
let engine: LocalEngine | null = null;
let opening = false;
const streams = new Map<string, AbortController>();

async function open(o: WorkerOpenOptions, onProgress: (p: LoadProgress) => void): Promise<OpenedInfo> {
  if (opening || engine) throw new LocalEngineUnsupportedError('this worker already holds an engine; open another worker');
  opening = true;
  try {
    const gpu = (navigator as Navigator & { gpu?: GPU }).gpu;
    if (!gpu) throw new LocalEngineUnsupportedError('This browser has no WebGPU in workers (navigator.gpu is missing). Use the server engine.');
    ctx = await createGpuContext(gpu, { label: 'vlmesh-local' });
    if (o.dtype === 'f16' && !ctx.caps.f16) {
      throw new LocalEngineUnsupportedError('f16 weights need the shader-f16 feature, which this GPU adapter does not have; load the model in f32');
    }
    const cache = await openModelCache();
    if (!cache) throw new LocalEngineUnsupportedError('This browser does not let the page store the model (no Cache API). Use the server engine.');
    const store = new WeightStore({ cache, ...(o.chunkBytes ? { chunkBytes: o.chunkBytes } : {}) });

    // download
    const t0 = performance.now();
    let downloadedBytes = 0;
    let firstStored: number | null = null;
    const files = await downloadModelFiles(store, await resolveModelFiles(store, o.modelUrl), {
      onProgress: (p) => {
        firstStored ??= p.loadedBytes;
        downloadedBytes = p.loadedBytes - firstStored;
        onProgress(p);
      },
    });
    const t1 = performance.now();

    // load (upload to the GPU)
    let loadProgress: PhaseProgress | null = null;
    loaded = await loadModel(ctx, modelDirectory(store, files), {
      ...(o.dtype ? { dtype: o.dtype } : {}),
      onProgress: (n, total) => {
        loadProgress ??= new PhaseProgress('load', total, onProgress);
        if (n >= total) loadProgress.finish();
        else loadProgress.update(n);
      },
    });
    (loadProgress as PhaseProgress | null)?.finish();
    const t2 = performance.now();

    const m = loaded;
    const maxModelLen = m.config.text.maxPositionEmbeddings;
    engine = new LocalEngine({
      modelId: o.modelId ?? modelNameOf(o.modelUrl),
      model: m,
      eosTokenIds: m.generation?.eosTokenIds ?? [],
      // The PNG decoder gives the pixels the Node engine gives; the browser's covers the other formats.
      decoders: [new PngImageDecoder(), new BrowserImageDecoder()],
      videoProcessor: m.videoProcessor,
      maxModelLen,
      maxNumSeqs: o.maxNumSeqs ?? 4,
      kvCacheBytes: o.kvCacheBytes ?? DEFAULT_KV_CACHE_BYTES,
      visionCache: new MemoryVisionCache({ maxBytes: 64 * 2 ** 20 }),
    });

    // compile: a two-token greedy answer builds the prefill and the decode pipelines. The prompt is
    // shorter than a KV block, so nothing of it stays in the prefix cache.
    const compile = new PhaseProgress('compile', 1, onProgress);
    compile.update(0);
    if (o.warmUp !== false) {
      for await (const _ of engine.stream({
        id: 'warm-up',
        messages: [{ role: 'user', content: 'Hi' }],
        images: [],
        sampling: { maxTokens: 2, temperature: 0, topP: 1, topK: 0 },
      })) {
        // drained
      }
    }
    compile.finish();
    const t3 = performance.now();
    const a = ctx.adapter;
    return {
      modelId: engine.modelId,
      dtype: m.dtype,
      adapter: { vendor: a.vendor, architecture: a.architecture, description: a.description, isFallbackAdapter: a.isFallbackAdapter },
      weightBytes: m.weightBytes,
      downloadedBytes,
      seconds: { download: (t1 - t0) / 1000, load: (t2 - t1) / 1000, compile: (t3 - t2) / 1000 },
      maxModelLen,
      stats: engine.stats(),
    };
  } catch (e) {
    await shutdown();
    throw e;
  } finally {
    opening = false;
  }
}

async function shutdown(): Promise<void> {
  for (const ac of streams.values()) ac.abort();
  streams.clear();
  const e = engine;
  engine = null;
  await e?.close().catch(() => undefined);
  loaded?.release();
  loaded = null;
  ctx?.destroy();
  ctx = null;
}

/** A main-thread callback as the worker holds it (comlink proxy: calls are messages). */
type Remote<F extends (...args: never[]) => unknown> = Comlink.Remote<F>;

function stream(id: string, request: WireRequest, sinkFn: (m: StreamMessage) => void): void {
  const sink = sinkFn as unknown as Remote<(m: StreamMessage) => void>;
  const send = (m: StreamMessage) => {
    void sink(m);
  };
  const running = engine;
  if (!running) {
    send({ type: 'error', error: serializeError(new LocalEngineUnsupportedError('the local engine is not open (or was closed)')) });
    sink[Comlink.releaseProxy]();
    return;
  }
  const ac = new AbortController();
  streams.set(id, ac);
  void (async () => {
    try {
      for await (const event of running.stream({ ...request, signal: ac.signal })) send({ type: 'event', event, stats: running.stats() });
      send({ type: 'end', stats: running.stats() });
    } catch (e) {
      send({ type: 'error', error: serializeError(e) });
    } finally {
      streams.delete(id);
      sink[Comlink.releaseProxy]();
    }
  })();
}

const api = {
  open: (o: WorkerOpenOptions, onProgressFn: (p: LoadProgress) => void): Promise<WorkerResult<OpenedInfo>> =>
    toResult(async () => {
      const onProgress = onProgressFn as unknown as Remote<(p: LoadProgress) => void>;
      try {
        return await open(o, (p) => void onProgress(p));
      } finally {
        onProgress[Comlink.releaseProxy]();
      }
    }),
  stream,
  abort(id: string): void {
    streams.get(id)?.abort();
  },
  stats(): EngineStats | null {
    return engine?.stats() ?? null;
  },
  close: (): Promise<WorkerResult<void>> => toResult(shutdown),
};

/** The API as the worker implements it (comlink's Remote<> of it is what the client holds). */
export type EngineWorkerApi = typeof api;

Comlink.expose(api);
