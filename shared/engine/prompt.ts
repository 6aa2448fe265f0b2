/**
 * Chat messages + images → a prepared prompt, the steps of the official processor: decode and
 * preprocess each image (smart resize, normalize, patchify), render the chat template, expand each
 * image placeholder to its grid's pad tokens, tokenize, and embed (vision tower included).
 * Shared by the CLI's `chat` and the engines.
 */
import { VlmeshError } from '../errors.ts';
import type { ImageDecoder } from '../io/image/decode.ts';
import { decodeImage } from '../io/image/decode.ts';
import { preprocessImage, preprocessVideo, QWEN3_VL_VIDEO_CONFIG, type VisionProcessorConfig } from '../io/image/preprocess.ts';
import { type Qwen3VLConfig, visionTokenIds } from '../model/qwen3-vl/config.ts';
import type { PreparedPrompt, Qwen3VLModel } from '../model/qwen3-vl/model.ts';
import type { Grid } from '../model/qwen3-vl/vision.ts';
import { buildPromptInputs, type ChatMessage, type ChatTemplate, videoTimestamps, visionTokens } from '../text/chat-template.ts';
import type { Tokenizer } from '../text/tokenizer.ts';
import type { GenerationRequest, ImageInput } from './engine.ts';

/** What prompt preparation needs of a loaded model (a subset of the model directory). */
export interface ChatModel {
  model: Qwen3VLModel;
  config: Qwen3VLConfig;
  tokenizer: Tokenizer;
  template: ChatTemplate;
  imageProcessor: VisionProcessorConfig;
}

/** One video's sampled frames (decoded RGB, all the same size), for the `{type: 'video'}` part. */
export interface VideoInput {
  frames: readonly Uint8Array[];
  width: number;
  height: number;
  /** Source frame index of each frame, and the source frame rate (for the timestamps). */
  frameIndices: readonly number[];
  fps: number;
  processor: VisionProcessorConfig;
}

export interface PrepareChatOptions {
  /** Tool schemas for the template. */
  tools?: unknown[];
  /** Image decoders (default: PNG only). */
  decoders?: readonly ImageDecoder[];
  /** Largest width·height of an input image, checked from its header before decoding (default 8192²). */
  maxImagePixels?: number;
  /** The video of the turn's `{type: 'video'}` part, if any. */
  video?: VideoInput;
  /** Check the prompt against the context before embedding it (and trim it if asked). */
  fit?: PromptFit;
}

/** The context check of `prepareChat`: prompt tokens + `reserve` must fit in `maxModelLen`. */
export interface PromptFit {
  /** The model's context in tokens. */
  maxModelLen: number;
  /** Tokens kept free for the answer (the request's `max_tokens`). */
  reserve: number;
  /** Drop the oldest non-system turns until the prompt fits, instead of failing. */
  truncate: boolean;
}

/** The prompt + `max_tokens` do not fit in the model's context (even after trimming, when asked). */
export class ContextLengthError extends VlmeshError {
  constructor(promptTokens: number, reserve: number, maxModelLen: number, trimmed: boolean) {
    super(
      'CONTEXT_LENGTH',
      `this model's maximum context length is ${maxModelLen} tokens, but the request needs ${promptTokens + reserve} ` +
        `(${promptTokens} in the messages${trimmed ? ' after dropping every older turn' : ''} + ${reserve} for the completion). ` +
        (trimmed
          ? 'Shorten the last user turn or the system prompt, or lower max_tokens.'
          : 'Shorten the messages, lower max_tokens, or send "truncate_prompt": "keep_system_and_recent" to drop the oldest turns.'),
    );
  }
}

/** How many `{type}` parts the messages hold. */
function countParts(messages: readonly ChatMessage[], type: string): number {
  let n = 0;
  for (const msg of messages) if (Array.isArray(msg.content)) for (const part of msg.content) if (part.type === type) n++;
  return n;
}

/**
 * Drops the oldest turn: the first non-system message and every non-system message up to the next
 * user message (a user turn with its assistant / tool answers). Null when that would drop the last
 * user turn.
 *
 *   [sys, u1, a1, u2, a2, u3] ─► [sys, u2, a2, u3] ─► [sys, u3] ─► null
 */
function dropOldestTurn(messages: readonly ChatMessage[]): ChatMessage[] | null {
  const first = messages.findIndex((m) => m.role !== 'system');
  if (first < 0) return null;
  const nextUser = messages.findIndex((m, i) => i > first && m.role === 'user');
  if (nextUser < 0) return null;
  return messages.filter((m, i) => i < first || i >= nextUser || m.role === 'system');
}

function concat(parts: readonly Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((s, a) => s + a.length, 0));
  let o = 0;
  for (const a of parts) {
    out.set(a, o);
    o += a.length;
  }
  return out;
}

export interface PreparedChat {
  prompt: PreparedPrompt;
  /** The prompt's token ids after pad expansion. */
  inputIds: number[];
}

/** One image of a planned prompt: its preprocessed pixels and grid. */
export interface PlannedImage {
  pixelValues: Float32Array;
  grid: Grid;
  /** Index of the source image in the request's `images`. */
  source: number;
}

/** A chat turn ready for the GPU: token ids after pad expansion and the preprocessed media. */
export interface PlannedChat {
  inputIds: number[];
  /** The images the prompt keeps (trimming may drop the oldest), in prompt order. */
  images: PlannedImage[];
  video: { pixelValues: Float32Array; grid: Grid } | null;
}

/**
 * The host side of preparing a chat turn: decode and preprocess images and video, render the
 * template, expand the pads, tokenize, and fit the context (no GPU work).
 *
 * @throws UnsupportedMediaError / ImageDecodeError / ImageTooLargeError for bad images,
 *   ContextLengthError when the prompt does not fit.
 */
export async function planChat(
  m: Omit<ChatModel, 'model'>,
  messages: readonly ChatMessage[],
  images: readonly ImageInput[],
  o: PrepareChatOptions = {},
): Promise<PlannedChat> {
  const planned: PlannedImage[] = [];
  for (const [source, img] of images.entries()) {
    const decoded = await decodeImage(img.bytes, { decoders: o.decoders, mimeType: img.mimeType, maxPixels: o.maxImagePixels });
    const r = preprocessImage(decoded, m.imageProcessor, { maxInputPixels: o.maxImagePixels });
    planned.push({ pixelValues: r.pixelValues, grid: r.gridThw as Grid, source });
  }
  let video: { pixelValues: Float32Array; grid: Grid; timestamps: number[] } | null = null;
  if (o.video) {
    const v = o.video;
    const pre = preprocessVideo(
      v.frames.map((data) => ({ width: v.width, height: v.height, data })),
      v.processor,
    );
    // Qwen3VLProcessor groups frames by the video processor's merge_size for the timestamps.
    video = { pixelValues: pre.pixelValues, grid: pre.gridThw as Grid, timestamps: videoTimestamps(v.frameIndices, v.fps, v.processor.mergeSize) };
  }
  // Render + expand + encode; with `fit`, measure and drop the oldest turns (with their images /
  // video) until prompt + reserve fits.
  let msgs: readonly ChatMessage[] = messages;
  let inputIds: number[];
  for (;;) {
    const text = m.template.render(msgs, { addGenerationPrompt: true, tools: o.tools });
    inputIds = buildPromptInputs(m.tokenizer, text, visionTokens(visionTokenIds(m.config), m.tokenizer), {
      imageGrids: planned.map((p) => p.grid),
      videos: video ? [{ gridThw: video.grid, timestamps: video.timestamps }] : [],
      mergeSize: m.config.vision.spatialMergeSize,
    }).inputIds;
    const fit = o.fit;
    if (!fit || inputIds.length + fit.reserve <= fit.maxModelLen) break;
    const shorter = fit.truncate ? dropOldestTurn(msgs) : null;
    if (!shorter) throw new ContextLengthError(inputIds.length, fit.reserve, fit.maxModelLen, fit.truncate);
    // Images are in message order: the dropped ones are the first ones.
    planned.splice(0, planned.length - countParts(shorter, 'image'));
    if (video && countParts(shorter, 'video') === 0) video = null;
    msgs = shorter;
  }
  return { inputIds, images: planned, video: video ? { pixelValues: video.pixelValues, grid: video.grid } : null };
}

/**
 * Prepares one chat turn; `images` belong to the `{type: 'image'}` parts in message order.
 * The caller releases `prompt`.
 *
 * @throws UnsupportedMediaError / ImageDecodeError / ImageTooLargeError for bad images.
 * @example
 * const { prompt, inputIds } = await prepareChat(m, [{ role: 'user', content: 'Hi' }], []);
 */
export async function prepareChat(
  m: ChatModel,
  messages: readonly ChatMessage[],
  images: readonly ImageInput[],
  o: PrepareChatOptions = {},
): Promise<PreparedChat> {
  const plan = await planChat(m, messages, images, o);
  const prompt = m.model.prepare(plan.inputIds, plannedPixels(plan));
  return { prompt, inputIds: plan.inputIds };
}

/** A planned turn's pixels as the model (and a mesh head peer) take them: all images in one array, the video apart. */
export function plannedPixels(plan: PlannedChat): {
  images?: { pixelValues: Float32Array; grids: Grid[] };
  videos?: { pixelValues: Float32Array; grids: Grid[] };
} {
  return {
    ...(plan.images.length ? { images: { pixelValues: concat(plan.images.map((i) => i.pixelValues)), grids: plan.images.map((i) => i.grid) } } : {}),
    ...(plan.video ? { videos: { pixelValues: plan.video.pixelValues, grids: [plan.video.grid] } } : {}),
  };
}

/** What an engine knows that planning a request needs (see `requestPlanOptions`). */
export interface EnginePlanSettings {
  /** Image decoders (default: PNG only). */
  decoders?: readonly ImageDecoder[];
  /** Largest width·height of an input image (default 8192²): larger ones fail with ImageTooLargeError before decoding. */
  maxImagePixels?: number;
  /**
   * The context in tokens (usually `config.text.maxPositionEmbeddings`): a request whose prompt +
   * `maxTokens` exceeds it fails with `ContextLengthError` before generating (or is trimmed, with
   * `truncatePrompt`). Default: no check beyond the KV cache's capacity.
   */
  maxModelLen?: number;
  /** Video preprocessing (smart resize, normalize) for requests with a video (default: Qwen3-VL's published one). */
  videoProcessor?: VisionProcessorConfig;
}

/**
 * `planChat` options for an engine request: its tools and video, the engine's decoders and image
 * limit, and the context check (a request without `max_tokens` reserves one token).
 */
export function requestPlanOptions(req: GenerationRequest, e: EnginePlanSettings): PrepareChatOptions {
  const sp = req.sampling;
  return {
    tools: req.tools,
    decoders: e.decoders,
    maxImagePixels: e.maxImagePixels,
    ...(e.maxModelLen
      ? { fit: { maxModelLen: e.maxModelLen, reserve: sp.maxTokensAuto ? 1 : sp.maxTokens, truncate: req.truncatePrompt === 'keep_system_and_recent' } }
      : {}),
    ...(req.video ? { video: { ...req.video, processor: e.videoProcessor ?? QWEN3_VL_VIDEO_CONFIG } } : {}),
  };
}
