/**
 * Opens a model directory in Hugging Face layout on disk: validated checkpoint, weights streamed
 * to the GPU, tokenizer, chat template and processor settings when present.
 */
import type { GpuContext } from '../../shared/gpu/context.ts';
import { readText } from '../../shared/io/byte-source.ts';
import {
  processorConfigFromJson,
  QWEN3_VL_IMAGE_CONFIG,
  QWEN3_VL_VIDEO_CONFIG,
  type VisionProcessorConfig,
} from '../../shared/io/image/preprocess.ts';
import { openQwen3VLCheckpoint, checkpointUploader } from '../../shared/model/qwen3-vl/checkpoint.ts';
import type { Qwen3VLConfig } from '../../shared/model/qwen3-vl/config.ts';
import type { GenerationConfig } from '../../shared/model/qwen3-vl/generation-config.ts';
import { loadWeights, type ModelDType } from '../../shared/model/qwen3-vl/load.ts';
import { Qwen3VLModel } from '../../shared/model/qwen3-vl/model.ts';
import { ChatTemplate, resolveChatTemplate, specialTokenVariables } from '../../shared/text/chat-template.ts';
import { Tokenizer } from '../../shared/text/tokenizer.ts';
import { fileDirectory } from './file-source.ts';

export interface OpenedModel {
  model: Qwen3VLModel;
  config: Qwen3VLConfig;
  generation: GenerationConfig | null;
  tokenizer: Tokenizer | null;
  template: ChatTemplate | null;
  imageProcessor: VisionProcessorConfig;
  /** From video_preprocessor_config.json (published defaults when absent). */
  videoProcessor: VisionProcessorConfig;
  /** Frame sampling of the video processor (`fps`, `min_frames`, `max_frames`; defaults 2, 4, 768). */
  videoSampling: VideoSampling;
  release(): void;
}

export interface VideoSampling {
  fps: number;
  minFrames: number;
  maxFrames: number;
}

function videoSamplingFromJson(json: Record<string, unknown> | null): VideoSampling {
  const num = (v: unknown, d: number) => (typeof v === 'number' && v > 0 ? v : d);
  return { fps: num(json?.fps, 2), minFrames: num(json?.min_frames, 4), maxFrames: num(json?.max_frames, 768) };
}

export interface OpenModelOptions {
  /**
   * Weight dtype on the GPU; default f16 where the adapter has shader-f16, else f32. `q4`
   * quantizes the decoder projections at load time (the rest in the adapter's default).
   */
  dtype?: ModelDType;
  onProgress?: (done: number, total: number, name: string) => void;
}

async function optionalJson(dir: ReturnType<typeof fileDirectory>, file: string): Promise<Record<string, unknown> | null> {
  const src = await dir.open(file);
  if (!src) return null;
  try {
    return JSON.parse(await readText(src)) as Record<string, unknown>;
  } finally {
    await src.close?.();
  }
}

/**
 * @example
 * const { model, tokenizer } = await openModelDir(ctx, './Qwen3-VL-2B-Instruct');
 */
export async function openModelDir(ctx: GpuContext, path: string, o: OpenModelOptions = {}): Promise<OpenedModel> {
  const dir = fileDirectory(path);
  const opened = await openQwen3VLCheckpoint(dir);
  const dtype = o.dtype ?? ctx.variants.weights;
  let weights: Awaited<ReturnType<typeof loadWeights>>;
  try {
    weights = await loadWeights(ctx, opened.config, checkpointUploader(opened.checkpoint), { dtype, onProgress: o.onProgress });
  } finally {
    await opened.checkpoint.close();
  }
  const tokJson = await optionalJson(dir, 'tokenizer.json');
  const tokenizer = tokJson ? Tokenizer.fromJSON(tokJson as never) : null;
  const tokConfig = (await optionalJson(dir, 'tokenizer_config.json')) ?? {};
  const chatJson = await optionalJson(dir, 'chat_template.json');
  const templateSource = chatJson ?? (tokConfig.chat_template ? tokConfig : null);
  const template = templateSource ? new ChatTemplate(resolveChatTemplate(templateSource), specialTokenVariables(tokConfig)) : null;
  const pre = await optionalJson(dir, 'preprocessor_config.json');
  const videoPre = await optionalJson(dir, 'video_preprocessor_config.json');
  return {
    model: new Qwen3VLModel(ctx, opened.config, weights),
    config: opened.config,
    generation: opened.generation,
    tokenizer,
    template,
    imageProcessor: pre ? processorConfigFromJson(pre, QWEN3_VL_IMAGE_CONFIG) : QWEN3_VL_IMAGE_CONFIG,
    videoProcessor: videoPre ? processorConfigFromJson(videoPre, QWEN3_VL_VIDEO_CONFIG) : QWEN3_VL_VIDEO_CONFIG,
    videoSampling: videoSamplingFromJson(videoPre),
    release: () => weights.release(),
  };
}
