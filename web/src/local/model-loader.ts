/**
 * Loads a Qwen3-VL model from any `ByteSourceDirectory` (here: the weight store's files) onto a
 * GPU context: the validated checkpoint streamed to the GPU, the tokenizer, the chat template
 * and the image / video processor settings. The browser's counterpart of edge-node's
 * `openModelDir` (which reads a folder on disk), with the upload progress in bytes.
 */
import type { ChatModel } from '../../../shared/engine/prompt.ts';
import type { GpuContext } from '../../../shared/gpu/context.ts';
import { type ByteSourceDirectory, readText } from '../../../shared/io/byte-source.ts';
import {
  processorConfigFromJson,
  QWEN3_VL_IMAGE_CONFIG,
  QWEN3_VL_VIDEO_CONFIG,
  type VisionProcessorConfig,
} from '../../../shared/io/image/preprocess.ts';
import type { TensorInfo } from '../../../shared/io/safetensors.ts';
import { checkpointUploader, openQwen3VLCheckpoint } from '../../../shared/model/qwen3-vl/checkpoint.ts';
import type { Qwen3VLConfig } from '../../../shared/model/qwen3-vl/config.ts';
import type { GenerationConfig } from '../../../shared/model/qwen3-vl/generation-config.ts';
import { loadWeights } from '../../../shared/model/qwen3-vl/load.ts';
import { Qwen3VLModel } from '../../../shared/model/qwen3-vl/model.ts';
import { ChatTemplate, resolveChatTemplate, specialTokenVariables } from '../../../shared/text/chat-template.ts';
import { Tokenizer } from '../../../shared/text/tokenizer.ts';
import { LocalEngineUnsupportedError } from './errors.ts';

/** A model ready for `LocalEngine`. */
export interface LoadedModel extends ChatModel {
  generation: GenerationConfig | null;
  videoProcessor: VisionProcessorConfig;
  /** Weight dtype on the GPU. */
  dtype: 'f32' | 'f16';
  /** Bytes the weights take on the GPU. */
  weightBytes: number;
  release(): void;
}

/**
 * Whether `loadWeights` uploads a tensor when it loads the whole model (every decoder layer, the
 * vision tower, embeddings, final norm, lm_head); other tensors in a checkpoint are skipped.
 */
export function isLoadedWeight(name: string): boolean {
  return (
    /^model\.language_model\.layers\.\d+\./.test(name) ||
    name.startsWith('model.visual.') ||
    name === 'model.language_model.embed_tokens.weight' ||
    name === 'model.language_model.norm.weight' ||
    name === 'lm_head.weight'
  );
}

/** Bytes a tensor takes on the GPU in `dtype` (4-byte aligned, as buffers are). */
export function uploadedBytes(t: Pick<TensorInfo, 'elements'>, dtype: 'f32' | 'f16'): number {
  const b = t.elements * (dtype === 'f32' ? 4 : 2);
  return Math.ceil(b / 4) * 4;
}

/** The GPU footprint of a checkpoint's weights in `dtype`: total and largest single tensor. */
export function weightFootprint(tensors: readonly TensorInfo[], dtype: 'f32' | 'f16'): { totalBytes: number; largest: { name: string; bytes: number } } {
  let totalBytes = 0;
  let largest = { name: '', bytes: 0 };
  for (const t of tensors) {
    if (!isLoadedWeight(t.name)) continue;
    const b = uploadedBytes(t, dtype);
    totalBytes += b;
    if (b > largest.bytes) largest = { name: t.name, bytes: b };
  }
  return { totalBytes, largest };
}

async function optionalJson(dir: ByteSourceDirectory, file: string): Promise<Record<string, unknown> | null> {
  const src = await dir.open(file);
  if (!src) return null;
  try {
    return JSON.parse(await readText(src)) as Record<string, unknown>;
  } finally {
    await src.close?.();
  }
}

export interface LoadModelOptions {
  /** Weight dtype on the GPU (default: f16 where the adapter has shader-f16, else f32). */
  dtype?: 'f32' | 'f16';
  /** Bytes uploaded so far of the total. */
  onProgress?: (loadedBytes: number, totalBytes: number) => void;
}

/**
 * @throws ConfigError / CheckpointError for a malformed model, LocalEngineUnsupportedError when
 *   it has no tokenizer or chat template (it could not chat), GPU errors when it does not fit.
 * @example
 * const m = await loadModel(ctx, modelDirectory(store, files), { onProgress: (n, total) => … });
 */
export async function loadModel(ctx: GpuContext, dir: ByteSourceDirectory, o: LoadModelOptions = {}): Promise<LoadedModel> {
  const dtype = o.dtype ?? ctx.variants.weights;
  if (dtype === 'f16' && !ctx.caps.f16) {
    throw new LocalEngineUnsupportedError('f16 weights need the shader-f16 feature, which this adapter does not have; use f32');
  }
  // Text side first: a model that cannot chat fails before its weights are uploaded.
  const tokJson = await optionalJson(dir, 'tokenizer.json');
  const tokConfig = (await optionalJson(dir, 'tokenizer_config.json')) ?? {};
  const chatJson = await optionalJson(dir, 'chat_template.json');
  const templateSource = chatJson ?? (tokConfig.chat_template ? tokConfig : null);
  if (!tokJson || !templateSource) {
    throw new LocalEngineUnsupportedError(`${dir.name} has no tokenizer.json or chat template: it cannot chat`);
  }
  const tokenizer = Tokenizer.fromJSON(tokJson);
  const template = new ChatTemplate(resolveChatTemplate(templateSource), specialTokenVariables(tokConfig));
  const pre = await optionalJson(dir, 'preprocessor_config.json');
  const videoPre = await optionalJson(dir, 'video_preprocessor_config.json');

  const opened = await openQwen3VLCheckpoint(dir);
  const config: Qwen3VLConfig = opened.config;
  const sizes = new Map(opened.checkpoint.tensors().map((t) => [t.name, uploadedBytes(t, dtype)] as const));
  const { totalBytes } = weightFootprint(opened.checkpoint.tensors(), dtype);
  let loaded = 0;
  o.onProgress?.(0, totalBytes);
  let weights: Awaited<ReturnType<typeof loadWeights>>;
  try {
    weights = await loadWeights(ctx, config, checkpointUploader(opened.checkpoint), {
      dtype,
      onProgress: (_done, _total, name) => {
        loaded += sizes.get(name) ?? 0;
        o.onProgress?.(loaded, totalBytes);
      },
    });
  } finally {
    await opened.checkpoint.close();
  }
  return {
    model: new Qwen3VLModel(ctx, config, weights),
    config,
    generation: opened.generation,
    tokenizer,
    template,
    imageProcessor: pre ? processorConfigFromJson(pre, QWEN3_VL_IMAGE_CONFIG) : QWEN3_VL_IMAGE_CONFIG,
    videoProcessor: videoPre ? processorConfigFromJson(videoPre, QWEN3_VL_VIDEO_CONFIG) : QWEN3_VL_VIDEO_CONFIG,
    dtype,
    weightBytes: totalBytes,
    release: () => weights.release(),
  };
}
