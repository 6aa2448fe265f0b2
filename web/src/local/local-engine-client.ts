/**
 * The local engine, main-thread side: `checkLocalSupport` (can this browser run the model?) and
 * `openLocalEngine` (start the engine worker, download or find the weights, load them, and hand
 * back an `Engine` whose `stream()` runs in the worker).
 *
 * The returned engine is a proxy: `stream()` sends the request (without its AbortSignal) to the
 * worker and yields the events the worker sends back on one comlink port, in order; aborting the
 * signal, or leaving the `for await` early, aborts the request in the worker. `stats()` answers
 * the last statistics the worker sent (they ride on every event).
 */
import * as Comlink from 'comlink';
import type { Engine, EngineStats, GenerationEvent, GenerationRequest } from '../../../shared/engine/engine.ts';
import type { EngineWorkerApi } from './engine.worker.ts';
import { deserializeError, EngineWorkerError, serializeError, unwrapResult } from './errors.ts';
import { normalizeModelUrl } from './model-files.ts';
import type { LoadProgress } from './progress.ts';
import type { OpenedInfo, StreamMessage } from './protocol.ts';
import { checkLocalSupport as check, type LocalSupport } from './support.ts';

export type { LoadPhase, LoadProgress } from './progress.ts';
export { formatBytes, formatEta } from './progress.ts';
export type { LocalSupport, LocalSupportCode } from './support.ts';
export type { OpenedInfo } from './protocol.ts';
export { EngineWorkerError, LocalEngineUnsupportedError, ModelFetchError, StorageQuotaError } from './errors.ts';

/**
 * Whether this browser can run the model at `modelUrl` (its directory: `/models/<name>/`)
 * locally, and in which dtype; otherwise a reason a person can read (and a `code`).
 *
 * @example
 * const s = await checkLocalSupport('/models/tiny/');
 * if (!s.ok) offerServerEngine(s.reason);
 */
export async function checkLocalSupport(modelUrl: string): Promise<LocalSupport> {
  return check(modelUrl);
}

export interface OpenLocalEngineOptions {
  /** The model directory's URL (`/models/<name>/`), absolute or relative to the page. */
  modelUrl: string;
  /** Download, upload and compile progress (throttled to ~10 reports a second). */
  onProgress?: (p: LoadProgress) => void;
  /** Aborting stops the load (the worker is terminated; what was downloaded stays cached). */
  signal?: AbortSignal;
  /** The id the engine reports (default: the directory's name). */
  modelId?: string;
  /** Weight dtype (default: f16 where the adapter has shader-f16, else f32). */
  dtype?: 'f16' | 'f32';
  /** Download piece size in bytes (default 16 MiB; a file already started keeps its own). */
  chunkBytes?: number;
  /** Requests run at once (default 4). */
  maxNumSeqs?: number;
  /** KV cache size in bytes (default 512 MiB, less when fewer tokens suffice). */
  kvCacheBytes?: number;
  /** Compile the pipelines while loading by generating one token (default true). */
  warmUp?: boolean;
}

/** Asks the browser to keep this site's storage under pressure (best effort; some browsers decide silently). */
async function requestPersistentStorage(): Promise<void> {
  const storage = globalThis.navigator?.storage;
  try {
    if (storage?.persist && !(await storage.persisted?.())) await storage.persist();
  } catch {
    // Not granted or not supported: the cache still works, it may just be evicted.
  }
}

/** A single-consumer async queue of stream messages. */
class MessageQueue {
  private readonly items: StreamMessage[] = [];
  private wake: (() => void) | null = null;
  push(m: StreamMessage): void {
    this.items.push(m);
    const w = this.wake;
    this.wake = null;
    w?.();
  }
  async next(): Promise<StreamMessage> {
    while (this.items.length === 0) {
      await new Promise<void>((r) => {
        this.wake = r;
      });
    }
    return this.items.shift() as StreamMessage;
  }
}

/**
 * The `Engine` of a model running in a worker. Close it to free the GPU memory and end the worker.
 */
export class WorkerEngine implements Engine {
  readonly modelId: string;
  /** What the worker reported when the engine started (dtype, adapter, load times). */
  readonly info: OpenedInfo;
  private lastStats: EngineStats;
  private nextId = 0;
  private closed = false;
  private failure: Error | null = null;
  /** The queues of the streams running now (a worker failure ends them all). */
  private readonly active = new Set<MessageQueue>();

  constructor(
    private readonly worker: Worker,
    private readonly remote: Comlink.Remote<EngineWorkerApi>,
    info: OpenedInfo,
  ) {
    this.info = info;
    this.modelId = info.modelId;
    this.lastStats = info.stats;
    worker.addEventListener('error', (ev) => {
      const failure = new EngineWorkerError(`the engine worker failed: ${ev.message || 'unknown error'}`);
      this.failure = failure;
      for (const q of this.active) q.push({ type: 'error', error: serializeError(failure) });
    });
  }

  stats(): EngineStats {
    return this.lastStats;
  }

  stream(request: GenerationRequest): AsyncIterable<GenerationEvent> {
    return this.run(request);
  }

  private async *run(request: GenerationRequest): AsyncGenerator<GenerationEvent> {
    if (this.closed) throw new EngineWorkerError('the local engine is closed');
    if (this.failure) throw this.failure;
    const { signal, ...wire } = request;
    const id = `${request.id}#${++this.nextId}`;
    const queue = new MessageQueue();
    const onAbort = () => void this.remote.abort(id);
    let ended = false;
    this.active.add(queue);
    try {
      await this.remote.stream(id, wire, Comlink.proxy((m: StreamMessage) => queue.push(m)));
    } catch (e) {
      this.active.delete(queue);
      throw e;
    }
    if (signal?.aborted) onAbort();
    else signal?.addEventListener('abort', onAbort, { once: true });
    try {
      for (;;) {
        const m = await queue.next();
        if (m.type === 'event') {
          this.lastStats = m.stats;
          yield m.event;
        } else if (m.type === 'end') {
          this.lastStats = m.stats;
          ended = true;
          return;
        } else {
          ended = true;
          throw deserializeError(m.error);
        }
      }
    } finally {
      this.active.delete(queue);
      signal?.removeEventListener('abort', onAbort);
      // The consumer stopped early: stop the generation too.
      if (!ended) onAbort();
    }
  }

  /** Ends the running requests, frees the model and the GPU device, and terminates the worker. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      unwrapResult(await this.remote.close());
    } finally {
      this.remote[Comlink.releaseProxy]();
      this.worker.terminate();
    }
  }
}

/**
 * Starts the model at `modelUrl` in a Web Worker on this tab's GPU. Files come from the weight
 * store when cached (no request), else are downloaded once with progress (resumable across
 * reloads). Throws `StorageQuotaError` when the browser's storage is too small,
 * `ModelFetchError` when a file cannot be fetched, `LocalEngineUnsupportedError` / GPU errors
 * when the adapter cannot run it, and an `AbortError` when `signal` fires.
 *
 * @example
 * const engine = await openLocalEngine({ modelUrl: '/models/tiny/', onProgress: (p) => bar.update(p) });
 * for await (const ev of engine.stream({ id: 'r1', messages, images: [], sampling })) …
 */
export async function openLocalEngine(o: OpenLocalEngineOptions): Promise<WorkerEngine> {
  o.signal?.throwIfAborted();
  const modelUrl = normalizeModelUrl(o.modelUrl, globalThis.location?.href);
  await requestPersistentStorage();
  const worker = new Worker(new URL('./engine.worker.ts', import.meta.url), { type: 'module', name: 'vlmesh-engine' });
  const remote = Comlink.wrap<EngineWorkerApi>(worker);
  let onAbort: (() => void) | null = null;
  let onError: ((ev: ErrorEvent) => void) | null = null;
  const stopped = new Promise<never>((_, reject) => {
    onAbort = () => reject(o.signal?.reason ?? new DOMException('loading the local engine was aborted', 'AbortError'));
    onError = (ev: ErrorEvent) => reject(new EngineWorkerError(`the engine worker failed to start: ${ev.message || 'script error'}`));
    o.signal?.addEventListener('abort', onAbort, { once: true });
    worker.addEventListener('error', onError);
  });
  const progress = o.onProgress;
  try {
    const result = await Promise.race([
      remote.open(
        {
          modelUrl,
          ...(o.modelId !== undefined ? { modelId: o.modelId } : {}),
          ...(o.dtype !== undefined ? { dtype: o.dtype } : {}),
          ...(o.chunkBytes !== undefined ? { chunkBytes: o.chunkBytes } : {}),
          ...(o.maxNumSeqs !== undefined ? { maxNumSeqs: o.maxNumSeqs } : {}),
          ...(o.kvCacheBytes !== undefined ? { kvCacheBytes: o.kvCacheBytes } : {}),
          ...(o.warmUp !== undefined ? { warmUp: o.warmUp } : {}),
        },
        Comlink.proxy((p: LoadProgress) => progress?.(p)),
      ),
      stopped,
    ]);
    return new WorkerEngine(worker, remote, unwrapResult(result));
  } catch (e) {
    remote[Comlink.releaseProxy]();
    worker.terminate();
    throw e;
  } finally {
    if (onAbort) o.signal?.removeEventListener('abort', onAbort);
    if (onError) worker.removeEventListener('error', onError);
  }
}
