/**
 * Streams a checkpoint weight `[N, K]` to the GPU as q4 (format: `quant-q4.ts`): rows are read
 * chunk by chunk, decoded to f32 (exact from BF16/F16/F32), quantized on the host and written
 * as codes and scales at their row offset. Neither the f32 weight nor the file is ever whole in
 * memory; the next chunk is read while the current one is quantized.
 */
import type { GpuContext } from '../gpu/context.ts';
import { QuantizedWeight } from '../kernels/linear/q4.ts';
import { CheckpointError } from './errors.ts';
import { checkQ4Shape, Q4_DEFAULT_GROUP, type Q4Options, quantizeQ4 } from './quant-q4.ts';
import type { Checkpoint } from './safetensors.ts';
import { decodeToF32, DEFAULT_UPLOAD_CHUNK_BYTES } from './upload.ts';

export interface UploadQ4Options extends Q4Options {
  /** GPU label (default: the tensor name). */
  label?: string;
  /** Source bytes per read (default 8 MiB), rounded down to an even number of rows (at least two). */
  chunkBytes?: number;
}

/**
 * Uploads one 2-D checkpoint tensor as a q4 weight.
 *
 * @example
 * const w = await uploadTensorQ4(ctx, ckpt, 'model.language_model.layers.0.mlp.up_proj.weight', { scaleDtype: 'f16' });
 */
export async function uploadTensorQ4(ctx: GpuContext, checkpoint: Checkpoint, name: string, o: UploadQ4Options = {}): Promise<QuantizedWeight> {
  const info = checkpoint.tensor(name);
  if (info.shape.length !== 2) throw new CheckpointError(`q4: tensor "${name}" has shape [${info.shape}], not [N, K]`, { tensor: name });
  const [N, K] = info.shape;
  const G = o.groupSize ?? Q4_DEFAULT_GROUP;
  const st = o.scaleDtype ?? 'f32';
  checkQ4Shape(N, K, G, `q4 weight "${name}"`);
  const label = o.label ?? name;
  const srcBytes = info.byteLength / Math.max(1, info.elements);
  // An even row count keeps every chunk's f16 scales 4-byte aligned (ctx.write needs that).
  const rowsPerChunk = Math.max(2, Math.floor((o.chunkBytes ?? DEFAULT_UPLOAD_CHUNK_BYTES) / (K * srcBytes)) & ~1);
  const codes = ctx.empty([N, K / 8], 'u32', `${label}.codes`);
  const scales = ctx.empty([N, K / G], st, `${label}.scales`);
  let pending: Promise<Uint8Array> | null = null;
  try {
    const f32 = new Float32Array(Math.min(N, rowsPerChunk) * K);
    const read = (r0: number) => checkpoint.readBytes(name, r0 * K * srcBytes, Math.min(rowsPerChunk, N - r0) * K * srcBytes);
    pending = read(0);
    for (let r0 = 0; r0 < N; r0 += rowsPerChunk) {
      const bytes = await pending!;
      const rows = Math.min(rowsPerChunk, N - r0);
      pending = r0 + rowsPerChunk < N ? read(r0 + rowsPerChunk) : null;
      const values = decodeToF32(info.dtype, bytes, f32);
      const q = quantizeQ4(values, rows, K, { groupSize: G, scaleDtype: st });
      ctx.write(codes, q.codes, r0 * (K / 8));
      ctx.write(scales, q.scalesF16 ?? q.scales, r0 * (K / G));
    }
    return new QuantizedWeight(codes, scales, [N, K], G, label);
  } catch (e) {
    pending?.catch(() => undefined);
    codes.release();
    scales.release();
    throw e;
  }
}
