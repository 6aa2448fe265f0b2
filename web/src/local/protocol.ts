/**
 * What the main thread and the engine worker say to each other (through comlink). Everything
 * here is structured-clone safe: no AbortSignals (aborts are calls), no class instances, errors
 * as `SerializedError`.
 *
 *   main                                  worker
 *   open(options, progress⇢) ───────────▶ GPU context, download, upload, warm-up
 *          ◀─ progress(LoadProgress)…
 *          ◀─ WorkerResult<OpenedInfo>
 *   stream(id, request, sink⇢) ─────────▶ LocalEngine.stream
 *          ◀─ sink({event})… sink({end}) | sink({error})     one port: events stay in order
 *   abort(id) ──────────────────────────▶ the request's AbortController
 *   close() ────────────────────────────▶ engine, weights, device released
 */
import type { EngineStats, GenerationEvent, GenerationRequest } from '../../../shared/engine/engine.ts';
import type { SerializedError } from './errors.ts';

/** Options of the worker's `open`. */
export interface WorkerOpenOptions {
  /** Absolute directory URL of the model, ending in '/'. */
  modelUrl: string;
  /** The id the engine reports (default: the directory's name). */
  modelId?: string;
  dtype?: 'f16' | 'f32';
  /** Download piece size in bytes (default 16 MiB). */
  chunkBytes?: number;
  /** Sequences run at once (default 4). */
  maxNumSeqs?: number;
  /** KV cache bytes (default 512 MiB, less when fewer tokens suffice). */
  kvCacheBytes?: number;
  /** Run one token through the model while loading so the first request does not compile pipelines (default true). */
  warmUp?: boolean;
}

/** What `open` reports once the engine runs. */
export interface OpenedInfo {
  modelId: string;
  dtype: 'f16' | 'f32';
  /** Adapter as WebGPU describes it. */
  adapter: { vendor: string; architecture: string; description: string; isFallbackAdapter: boolean };
  weightBytes: number;
  /** Bytes downloaded by this open (0 when everything came from the cache). */
  downloadedBytes: number;
  /** Seconds spent in each phase. */
  seconds: { download: number; load: number; compile: number };
  /** The model's context in tokens. */
  maxModelLen: number;
  stats: EngineStats;
}

/** A request as it crosses to the worker (the signal stays on the main thread). */
export type WireRequest = Omit<GenerationRequest, 'signal'>;

/** One message of a stream, main ← worker. */
export type StreamMessage =
  | { type: 'event'; event: GenerationEvent; stats: EngineStats }
  | { type: 'end'; stats: EngineStats }
  | { type: 'error'; error: SerializedError };
