/**
 * The `Engine` interface: what the server and the UI talk to, whichever way the model runs
 * (in this thread, in a browser worker, across the mesh, or upstream).
 */
import type { ChatMessage } from '../text/chat-template.ts';

export interface ImageInput {
  /** Encoded image bytes (PNG, JPEG, WebP). */
  bytes: Uint8Array;
  mimeType?: string;
}

/** One video's sampled frames (decoded RGB, all the same size), for a `{type: 'video'}` part. */
export interface VideoFramesInput {
  /** Each frame is height·width·3 RGB bytes. */
  frames: readonly Uint8Array[];
  width: number;
  height: number;
  /** Source frame index of each frame, and the source frame rate (for the timestamps). */
  frameIndices: readonly number[];
  fps: number;
}

export interface SamplingParams {
  maxTokens: number;
  /**
   * The request gave no `max_tokens`: `maxTokens` is only a cap, and the engine uses what the
   * context leaves after the prompt (at most `maxTokens`).
   */
  maxTokensAuto?: boolean;
  /** 0 = greedy. */
  temperature: number;
  topP: number;
  /** 0 = off. */
  topK: number;
  seed?: number;
  presencePenalty?: number;
  frequencyPenalty?: number;
  repetitionPenalty?: number;
  stop?: string[];
}

export interface GenerationRequest {
  id: string;
  messages: ChatMessage[];
  /** Images referenced by `{type: 'image'}` parts, in message order. */
  images: ImageInput[];
  sampling: SamplingParams;
  /** The video of the turn's `{type: 'video'}` part (at most one), already decoded to frames. */
  video?: VideoFramesInput;
  /** Tool definitions handed to the chat template. */
  tools?: unknown[];
  /** When the prompt + `max_tokens` exceed the context: drop the oldest non-system turns (default: fail). */
  truncatePrompt?: 'keep_system_and_recent';
  /** Scheduling class (default 'interactive'). */
  priority?: PriorityClass;
  /** Keeps this conversation's KV blocks warm for the next turn (see the engine's session TTL). */
  sessionId?: string;
  signal?: AbortSignal;
}

/**
 * Scheduling classes, most urgent first: GUI-automation agents wait on every step, people
 * chatting wait on the first token, batch jobs (OCR) only on the total.
 */
export const PRIORITY_CLASSES = ['gui', 'interactive', 'batch'] as const;
export type PriorityClass = (typeof PRIORITY_CLASSES)[number];

/** One streamed piece of an answer. */
export type GenerationEvent =
  | { kind: 'delta'; text: string; tokenIds: number[] }
  | {
      kind: 'done';
      finishReason: 'stop' | 'length' | 'abort';
      promptTokens: number;
      completionTokens: number;
      /** Seconds from submit to the first token. */
      ttft: number;
    };

export interface EngineStats {
  running: number;
  waiting: number;
  kvUsage: number;
  /** Cumulative counters, where the engine has them. */
  counters?: EngineCounters;
}

export interface EngineCounters {
  /** Prompt tokens looked up in the prefix cache, and those found (not recomputed). */
  prefixQueriedTokens: number;
  prefixHitTokens: number;
  /** Images whose vision-tower output came from the vision cache, and those encoded. */
  visionCacheHits: number;
  visionCacheMisses: number;
  visionImagesEncoded: number;
  /** Vision-tower passes run (images of concurrent requests with one resolution share a pass). */
  visionPasses: number;
  /** Sequences preempted (their KV freed, to be recomputed later). */
  preemptions: number;
  /** Decode steps run, and sequences decoded over all of them (mean batch = ratio). */
  decodeSteps: number;
  decodeRows: number;
}

export interface Engine {
  /** Model id served (for /v1/models). */
  readonly modelId: string;
  /** Streams the answer to a request; aborting `signal` ends it with finishReason 'abort'. */
  stream(request: GenerationRequest): AsyncIterable<GenerationEvent>;
  stats(): EngineStats;
  close(): Promise<void>;
}
