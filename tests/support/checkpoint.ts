/**
 * A small in-memory safetensors reader for model tests on the tiny golden checkpoints (the whole
 * 10 MB file in memory). Isomorphic: it runs in the gpu and the browser projects.
 */
import type { GpuContext } from '../../shared/gpu/context.ts';
import { toF16Array } from '../../shared/gpu/f16.ts';
import type { TensorUploader } from '../../shared/model/qwen3-vl/load.ts';

interface Entry {
  dtype: string;
  shape: number[];
  data_offsets: [number, number];
}

export function safetensorsBytes(buf: Uint8Array): TensorUploader & { f32(name: string): Float32Array } {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const n = Number(dv.getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(buf.subarray(8, 8 + n))) as Record<string, Entry>;
  const base = 8 + n;
  const entries = Object.entries(header).filter(([k]) => k !== '__metadata__');
  const bits = new Uint32Array(1);
  const asF32 = new Float32Array(bits.buffer);
  const f32 = (name: string): Float32Array => {
    const e = header[name];
    const count = e.shape.reduce((a, b) => a * b, 1);
    const out = new Float32Array(count);
    const start = base + e.data_offsets[0];
    for (let i = 0; i < count; i++) {
      if (e.dtype === 'BF16') {
        bits[0] = dv.getUint16(start + 2 * i, true) << 16;
        out[i] = asF32[0];
      } else if (e.dtype === 'F32') {
        out[i] = dv.getFloat32(start + 4 * i, true);
      } else {
        throw new Error(`unsupported dtype ${e.dtype}`);
      }
    }
    return out;
  };
  return {
    f32,
    names: () => entries.map(([k]) => k),
    shape: (name) => header[name].shape,
    async upload(ctx: GpuContext, name: string, dtype: 'f32' | 'f16') {
      const data = f32(name);
      const shape = header[name].shape;
      return dtype === 'f32' ? ctx.upload(data, shape, 'f32', name) : ctx.upload(toF16Array(data), shape, 'f16', name);
    },
  };
}
