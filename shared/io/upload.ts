/**
 * Streams checkpoint tensors to the GPU: the bytes are read from their file chunk by chunk,
 * converted (BF16/F16/F32 → f32 or f16) and written at their element offset, so neither the
 * tensor nor the file is ever whole in JS memory (at most two source chunks and one converted
 * chunk are).
 *
 * Conversions are exact where the target can hold the value (bf16 → f32, f16 → f32, bf16 → f16
 * in f16's normal range) and round to nearest even otherwise (f32 → f16, tiny or huge bf16 →
 * f16), the same as `f32ToF16Bits`.
 */
import type { GpuContext } from '../gpu/context.ts';
import { f16BitsToF32, f32ToF16Bits } from '../gpu/f16.ts';
import type { Tensor } from '../gpu/tensor.ts';
import { CheckpointError } from './errors.ts';
import type { Checkpoint, SafetensorsDType } from './safetensors.ts';

/** Element types weights can take on the GPU. */
export type WeightDType = 'f32' | 'f16';

/** Default bytes read from the checkpoint per step. */
export const DEFAULT_UPLOAD_CHUNK_BYTES = 8 << 20;

export interface UploadOptions {
  /** Element type on the GPU. */
  dtype: WeightDType;
  /** GPU label (default: the tensor name). */
  label?: string;
  /** Source bytes per read (default 8 MiB). Rounded down to an even element count. */
  chunkBytes?: number;
}

const littleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

let f16ToF32Table: Float32Array | null = null;
/** f16 bits → f32, all 65536 patterns (256 KiB, built once). */
function f16Table(): Float32Array {
  if (!f16ToF32Table) {
    f16ToF32Table = new Float32Array(0x10000);
    for (let h = 0; h < 0x10000; h++) f16ToF32Table[h] = f16BitsToF32(h);
  }
  return f16ToF32Table;
}

let bf16ToF16Table: Uint16Array | null = null;
/**
 * bf16 bits → f16 bits, all 65536 patterns (128 KiB, built once): each entry is
 * `f32ToF16Bits(bf16 as f32)`, i.e. round to nearest even, overflow → ±Inf, NaN kept.
 */
function bf16Table(): Uint16Array {
  if (!bf16ToF16Table) {
    bf16ToF16Table = new Uint16Array(0x10000);
    const f = new Float32Array(1);
    const u = new Uint32Array(f.buffer);
    for (let b = 0; b < 0x10000; b++) {
      u[0] = b << 16;
      bf16ToF16Table[b] = f32ToF16Bits(f[0]);
    }
  }
  return bf16ToF16Table;
}

/** The bytes as little-endian u16 values (a view when aligned on a little-endian host, else a copy). */
function asU16(bytes: Uint8Array): Uint16Array {
  if (littleEndian && bytes.byteOffset % 2 === 0) return new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 2);
  const out = new Uint16Array(bytes.byteLength / 2);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let i = 0; i < out.length; i++) out[i] = dv.getUint16(2 * i, true);
  return out;
}

/** The bytes as little-endian f32 values (a view when aligned on a little-endian host, else a copy). */
function asF32(bytes: Uint8Array): Float32Array {
  if (littleEndian && bytes.byteOffset % 4 === 0) return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
  const out = new Float32Array(bytes.byteLength / 4);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let i = 0; i < out.length; i++) out[i] = dv.getFloat32(4 * i, true);
  return out;
}

/**
 * Converts little-endian checkpoint bytes to f32 values. `out` (length ≥ element count) is
 * reused when given; the result is a view of it.
 */
export function decodeToF32(src: SafetensorsDType, bytes: Uint8Array, out?: Float32Array): Float32Array {
  const n = bytes.byteLength / (src === 'F32' ? 4 : 2);
  const dst = out ? out.subarray(0, n) : new Float32Array(n);
  switch (src) {
    case 'F32':
      dst.set(asF32(bytes));
      break;
    case 'BF16': {
      // bf16 is the top half of an f32: shifting the bits up is exact.
      const s = asU16(bytes);
      const d = new Uint32Array(dst.buffer, dst.byteOffset, n);
      for (let i = 0; i < n; i++) d[i] = s[i] << 16;
      break;
    }
    case 'F16': {
      const s = asU16(bytes);
      const t = f16Table();
      for (let i = 0; i < n; i++) dst[i] = t[s[i]];
      break;
    }
  }
  return dst;
}

/**
 * Converts little-endian checkpoint bytes to f16 bit patterns (round to nearest even).
 * `out` (length ≥ element count) is reused when given; the result is a view of it.
 */
export function decodeToF16(src: SafetensorsDType, bytes: Uint8Array, out?: Uint16Array): Uint16Array {
  const n = bytes.byteLength / (src === 'F32' ? 4 : 2);
  const dst = out ? out.subarray(0, n) : new Uint16Array(n);
  switch (src) {
    case 'F16':
      dst.set(asU16(bytes));
      break;
    case 'BF16': {
      // Fast path: one table lookup per element, no float arithmetic.
      const s = asU16(bytes);
      const t = bf16Table();
      for (let i = 0; i < n; i++) dst[i] = t[s[i]];
      break;
    }
    case 'F32': {
      const s = asF32(bytes);
      for (let i = 0; i < n; i++) dst[i] = f32ToF16Bits(s[i]);
      break;
    }
  }
  return dst;
}

/**
 * Uploads one checkpoint tensor to a new GPU tensor of its shape, converting to `dtype`, chunk by
 * chunk. The next chunk is read while the current one is converted.
 *
 * @example
 * const w = await uploadTensor(ctx, ckpt, 'model.language_model.norm.weight', { dtype: 'f32' });
 */
export async function uploadTensor(ctx: GpuContext, checkpoint: Checkpoint, name: string, options: UploadOptions): Promise<Tensor> {
  const info = checkpoint.tensor(name);
  const srcBytes = info.byteLength / Math.max(1, info.elements);
  const chunkBytes = options.chunkBytes ?? DEFAULT_UPLOAD_CHUNK_BYTES;
  if (!(chunkBytes >= 8)) throw new CheckpointError(`uploadTensor: chunkBytes must be ≥ 8, got ${chunkBytes}`, { tensor: name });
  // An even element count keeps every f16 chunk's element offset 4-byte aligned (ctx.write needs that).
  const chunkElems = Math.max(2, Math.floor(chunkBytes / srcBytes) & ~1);
  const tensor = ctx.empty(info.shape, options.dtype, options.label ?? name);
  let pending: Promise<Uint8Array> | null = null;
  try {
    const total = info.elements;
    const out =
      options.dtype === 'f32'
        ? new Float32Array(Math.min(chunkElems, total))
        : new Uint16Array(Math.min(chunkElems, total));
    const read = (start: number) => checkpoint.readBytes(name, start * srcBytes, Math.min(chunkElems, total - start) * srcBytes);
    pending = total > 0 ? read(0) : null;
    for (let start = 0; start < total; start += chunkElems) {
      const bytes = await pending!;
      pending = start + chunkElems < total ? read(start + chunkElems) : null;
      const values =
        out instanceof Float32Array ? decodeToF32(info.dtype, bytes, out) : decodeToF16(info.dtype, bytes, out as Uint16Array);
      // writeBuffer copies `values` before returning, so `out` is free for the next chunk.
      ctx.write(tensor, values, start);
    }
    return tensor;
  } catch (e) {
    pending?.catch(() => undefined); // a read still in flight: its failure is not news
    tensor.release();
    throw e;
  }
}

/**
 * A tensor's values on the host as f32 (the whole tensor in memory: for small tensors, tests and
 * references; stream large ones with `uploadTensor`).
 */
export async function readTensorF32(checkpoint: Checkpoint, name: string): Promise<Float32Array> {
  const info = checkpoint.tensor(name);
  return decodeToF32(info.dtype, await checkpoint.readBytes(name));
}
