/**
 * Opening a Qwen3-VL checkpoint directory: `config.json` (required), `generation_config.json`
 * (optional), the safetensors files (single or sharded), all checked against each other before
 * any weight is read. Works on any `ByteSourceDirectory` (disk, picked files, HTTP).
 */
import type { GpuContext } from '../../gpu/context.ts';
import type { Tensor } from '../../gpu/tensor.ts';
import { type ByteSourceDirectory, readText } from '../../io/byte-source.ts';
import { type Checkpoint, openCheckpoint } from '../../io/safetensors.ts';
import { uploadTensor, type WeightDType } from '../../io/upload.ts';
import { uploadTensorQ4 } from '../../io/upload-q4.ts';
import { ConfigError, parseQwen3VLConfig, type Qwen3VLConfig } from './config.ts';
import { type GenerationConfig, parseGenerationConfig } from './generation-config.ts';
import type { TensorUploader } from './load.ts';
import { type CheckpointReport, validateCheckpoint, type WeightSelection } from './weights.ts';

/** Reads and parses a JSON file of `dir`; null when absent and `optional`. */
async function readJson(dir: ByteSourceDirectory, file: string, optional: boolean): Promise<unknown> {
  const src = await dir.open(file);
  if (!src) {
    if (optional) return null;
    throw new ConfigError(`${dir.name}: ${file} is missing`);
  }
  try {
    const text = await readText(src);
    try {
      return JSON.parse(text);
    } catch (e) {
      throw new ConfigError(`${dir.name}/${file} is not valid JSON: ${(e as Error).message}`);
    }
  } finally {
    await src.close?.();
  }
}

/** An opened, validated checkpoint. Close `checkpoint` when done. */
export interface Qwen3VLCheckpoint {
  config: Qwen3VLConfig;
  /** null when the directory has no generation_config.json. */
  generation: GenerationConfig | null;
  checkpoint: Checkpoint;
  report: CheckpointReport;
}

/**
 * Opens and validates a Qwen3-VL checkpoint directory for a selection of its weights (default:
 * everything). Throws `ConfigError` for config problems and `CheckpointError` for weight problems.
 *
 * @example
 * const { config, checkpoint, report } = await openQwen3VLCheckpoint(fileDirectory(path), { layers: [0, 14] });
 */
export async function openQwen3VLCheckpoint(dir: ByteSourceDirectory, selection: WeightSelection = {}): Promise<Qwen3VLCheckpoint> {
  const config = parseQwen3VLConfig(await readJson(dir, 'config.json', false), 'config.json');
  const genRaw = await readJson(dir, 'generation_config.json', true);
  const generation = genRaw === null ? null : parseGenerationConfig(genRaw, 'generation_config.json');
  const checkpoint = await openCheckpoint(dir);
  try {
    const report = validateCheckpoint(config, checkpoint, selection);
    return { config, generation, checkpoint, report };
  } catch (e) {
    await checkpoint.close();
    throw e;
  }
}

/**
 * A `TensorUploader` (the interface `loadWeights` takes) that streams tensors from a checkpoint.
 *
 * @example
 * const weights = await loadWeights(ctx, config, checkpointUploader(checkpoint), { dtype: 'f16' });
 */
export function checkpointUploader(checkpoint: Checkpoint, options: { chunkBytes?: number } = {}): TensorUploader {
  return {
    names: () => checkpoint.names(),
    shape: (name: string) => checkpoint.tensor(name).shape,
    upload: (ctx: GpuContext, name: string, dtype: WeightDType): Promise<Tensor> =>
      uploadTensor(ctx, checkpoint, name, options.chunkBytes === undefined ? { dtype } : { dtype, chunkBytes: options.chunkBytes }),
    uploadQ4: (ctx: GpuContext, name: string, o: { groupSize: number; scaleDtype: WeightDType }) =>
      uploadTensorQ4(ctx, checkpoint, name, options.chunkBytes === undefined ? o : { ...o, chunkBytes: options.chunkBytes }),
  };
}
