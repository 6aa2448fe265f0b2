/**
 * Chat messages + images → a prepared prompt, the steps of the official processor: decode and
 * preprocess each image (smart resize, normalize, patchify), render the chat template, expand each
 * image placeholder to its grid's pad tokens, tokenize, and embed (vision tower included).
 * Shared by the CLI's `chat` and the engines.
 */
import type { ImageDecoder } from '../io/image/decode.ts';
import { decodeImage } from '../io/image/decode.ts';
import { preprocessImage, preprocessVideo, type VisionProcessorConfig } from '../io/image/preprocess.ts';
import { type Qwen3VLConfig, visionTokenIds } from '../model/qwen3-vl/config.ts';
import type { PreparedPrompt, Qwen3VLModel } from '../model/qwen3-vl/model.ts';
import type { Grid } from '../model/qwen3-vl/vision.ts';
import { buildPromptInputs, type ChatMessage, type ChatTemplate, videoTimestamps, visionTokens } from '../text/chat-template.ts';
import type { Tokenizer } from '../text/tokenizer.ts';
import type { ImageInput } from './engine.ts';

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
  /** The video of the turn's `{type: 'video'}` part, if any. */
  video?: VideoInput;
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
  const pixels: Float32Array[] = [];
  const grids: Grid[] = [];
  for (const img of images) {
    const decoded = await decodeImage(img.bytes, { decoders: o.decoders, mimeType: img.mimeType });
    const r = preprocessImage(decoded, m.imageProcessor);
    pixels.push(r.pixelValues);
    grids.push(r.gridThw as Grid);
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
  const text = m.template.render(messages, { addGenerationPrompt: true, tools: o.tools });
  const { inputIds } = buildPromptInputs(m.tokenizer, text, visionTokens(visionTokenIds(m.config), m.tokenizer), {
    imageGrids: grids,
    videos: video ? [{ gridThw: video.grid, timestamps: video.timestamps }] : [],
    mergeSize: m.config.vision.spatialMergeSize,
  });
  const prompt = m.model.prepare(inputIds, {
    ...(pixels.length ? { images: { pixelValues: concat(pixels), grids } } : {}),
    ...(video ? { videos: { pixelValues: video.pixelValues, grids: [video.grid] } } : {}),
  });
  return { prompt, inputIds };
}
