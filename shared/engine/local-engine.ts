/**
 * `LocalEngine`: the `Engine` over a model loaded in this thread.
 *
 * Requests run ONE AT A TIME in arrival (FIFO) order through a promise chain; each gets its own KV
 * cache sized to its prompt + `maxTokens`, released when it ends. This is the simple first step:
 * continuous batching (many sequences sharing one paged cache, prefill interleaved with decode)
 * replaces the queue later behind the same interface.
 *
 *   stream(req) ──► queue (waiting) ──► prepare prompt ─► generate ─► events ──► consumer
 *                    FIFO, one runs       (images, template, vision tower)
 *
 * A request ends with finishReason 'abort' when its `signal` aborts, or when the consumer stops
 * iterating (`break` / `return()`): a client that hangs up frees the engine for the next request.
 */
import { VlmeshError } from '../errors.ts';
import type { ImageDecoder } from '../io/image/decode.ts';
import { QWEN3_VL_VIDEO_CONFIG, type VisionProcessorConfig } from '../io/image/preprocess.ts';
import type { PagedKvCache } from '../model/qwen3-vl/kv-cache.ts';
import type { Engine, EngineStats, GenerationEvent, GenerationRequest } from './engine.ts';
import { generate } from './generate.ts';
import { type ChatModel, type PreparedChat, prepareChat } from './prompt.ts';

/** The engine was used after `close()`. */
export class EngineClosedError extends VlmeshError {
  constructor() {
    super('ENGINE_CLOSED', 'the engine is closed and takes no more requests');
  }
}

export interface LocalEngineOptions {
  /** The id reported by /v1/models and checked against a request's `model`. */
  modelId: string;
  /** The loaded model, tokenizer, chat template and image processor settings. */
  model: ChatModel;
  /** Generation stops after any of these ids (the model's `eos_token_id`). */
  eosTokenIds?: readonly number[];
  /** Image decoders (default: PNG only). */
  decoders?: readonly ImageDecoder[];
  /** Video preprocessing (smart resize, normalize) for requests with a video (default: Qwen3-VL's published one). */
  videoProcessor?: VisionProcessorConfig;
  /** KV cache block size in tokens (default 16). */
  blockSize?: number;
  /** Prefill chunk length in tokens (generate's default when omitted). */
  chunkSize?: number;
  /**
   * The context in tokens (usually `config.text.maxPositionEmbeddings`): a request whose prompt +
   * `maxTokens` exceeds it fails with `ContextLengthError` before generating (or is trimmed, with
   * `truncatePrompt`). Default: no check.
   */
  maxModelLen?: number;
}

/** An unbounded single-consumer queue of events that ends, or fails with an error. */
class EventChannel<T> implements AsyncIterable<T> {
  private readonly items: T[] = [];
  private wake: (() => void) | null = null;
  private ended = false;
  private error: unknown = null;

  push(item: T): void {
    this.items.push(item);
    this.notify();
  }
  end(): void {
    this.ended = true;
    this.notify();
  }
  fail(error: unknown): void {
    this.error = error ?? new Error('engine failure');
    this.end();
  }
  private notify(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }
  async *[Symbol.asyncIterator](): AsyncIterator<T> {
    for (;;) {
      if (this.items.length) {
        yield this.items.shift() as T;
        continue;
      }
      if (this.ended) {
        if (this.error) throw this.error;
        return;
      }
      await new Promise<void>((resolve) => {
        this.wake = resolve;
      });
    }
  }
}

/**
 * @example
 * const engine = new LocalEngine({ modelId: 'qwen3-vl-2b', model: opened, eosTokenIds: opened.generation?.eosTokenIds });
 * for await (const ev of engine.stream({ id: 'r1', messages, images: [], sampling })) {
 *   if (ev.kind === 'delta') process.stdout.write(ev.text);
 * }
 */
export class LocalEngine implements Engine {
  readonly modelId: string;
  private readonly o: LocalEngineOptions;
  /** Settles when every request queued so far has finished. */
  private tail: Promise<void> = Promise.resolve();
  private running = 0;
  private waiting = 0;
  private closed = false;
  private kv: PagedKvCache | null = null;

  constructor(o: LocalEngineOptions) {
    this.o = o;
    this.modelId = o.modelId;
  }

  stats(): EngineStats {
    return { running: this.running, waiting: this.waiting, kvUsage: this.kv ? this.kv.blocks.usage : 0 };
  }

  /** Takes no more requests and waits for the queued ones to finish. */
  async close(): Promise<void> {
    this.closed = true;
    await this.tail;
  }

  stream(request: GenerationRequest): AsyncIterable<GenerationEvent> {
    return this.run(request);
  }

  private async *run(request: GenerationRequest): AsyncGenerator<GenerationEvent> {
    if (this.closed) throw new EngineClosedError();
    const channel = new EventChannel<GenerationEvent>();
    const local = new AbortController();
    const onAbort = () => local.abort();
    if (request.signal?.aborted) local.abort();
    request.signal?.addEventListener('abort', onAbort, { once: true });
    const submitted = performance.now();
    this.waiting++;
    // execute() never rejects (failures go to the channel), so the chain never breaks.
    this.tail = this.tail.then(() => this.execute(request, local.signal, channel, submitted));
    try {
      yield* channel;
    } finally {
      // The consumer stopped (or the request finished): make sure the generation stops too.
      local.abort();
      request.signal?.removeEventListener('abort', onAbort);
    }
  }

  private async execute(request: GenerationRequest, signal: AbortSignal, channel: EventChannel<GenerationEvent>, submitted: number): Promise<void> {
    this.waiting--;
    if (signal.aborted) {
      channel.push({ kind: 'done', finishReason: 'abort', promptTokens: 0, completionTokens: 0, ttft: 0 });
      channel.end();
      return;
    }
    this.running++;
    const m = this.o.model;
    const s = request.sampling;
    let prepared: PreparedChat | null = null;
    let kv: PagedKvCache | null = null;
    try {
      prepared = await prepareChat(m, request.messages, request.images, {
        tools: request.tools,
        decoders: this.o.decoders,
        ...(this.o.maxModelLen
          ? { fit: { maxModelLen: this.o.maxModelLen, reserve: s.maxTokens, truncate: request.truncatePrompt === 'keep_system_and_recent' } }
          : {}),
        ...(request.video ? { video: { ...request.video, processor: this.o.videoProcessor ?? QWEN3_VL_VIDEO_CONFIG } } : {}),
      });
      const blockSize = this.o.blockSize ?? 16;
      const S = prepared.inputIds.length;
      kv = m.model.createKvCache({ numBlocks: Math.ceil((S + s.maxTokens) / blockSize) + 1, blockSize });
      this.kv = kv;
      const decoder = m.tokenizer.streamingDecoder({ skipSpecialTokens: true });
      let first = 0;
      // Ids decoded since the last text event; they ride on the next delta.
      let ids: number[] = [];
      const result = await generate(m.model, kv, prepared.prompt, {
        maxNewTokens: s.maxTokens,
        chunkSize: this.o.chunkSize,
        sampling: s.temperature > 0 ? { temperature: s.temperature, topK: s.topK, topP: s.topP, seed: s.seed } : undefined,
        eosTokenIds: this.o.eosTokenIds ?? [],
        penalties: { repetition: s.repetitionPenalty ?? 1, frequency: s.frequencyPenalty ?? 0, presence: s.presencePenalty ?? 0 },
        promptIds: prepared.inputIds,
        stop: {
          strings: s.stop ?? [],
          decoder: (id) => {
            first ||= performance.now();
            ids.push(id);
            return decoder.push(id);
          },
          flush: () => decoder.flush(),
          onText: (text) => {
            channel.push({ kind: 'delta', text, tokenIds: ids });
            ids = [];
          },
        },
        signal,
      });
      if (ids.length) channel.push({ kind: 'delta', text: '', tokenIds: ids });
      channel.push({
        kind: 'done',
        finishReason: result.finishReason,
        promptTokens: result.promptTokens,
        completionTokens: result.tokens.length,
        ttft: first ? (first - submitted) / 1000 : 0,
      });
      channel.end();
    } catch (e) {
      channel.fail(e);
    } finally {
      prepared?.prompt.release();
      kv?.release();
      this.kv = null;
      this.running--;
    }
  }
}
