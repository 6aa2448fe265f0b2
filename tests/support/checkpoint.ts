/**
 * A small in-memory safetensors reader for model tests on the tiny golden checkpoints
 * (whole file in memory: fine at 10 MB).
 */
import { readFileSync } from 'node:fs';
import type { GpuContext } from '../../shared/gpu/context.ts';
import { toF16Array } from '../../shared/gpu/f16.ts';
import type { TensorUploader } from '../../shared/model/qwen3-vl/load.ts';

interface Entry {
  dtype: string;
  shape: number[];
  data_offsets: [number, number];
}

export function safetensorsFile(path: string): TensorUploader & { f32(name: string): Float32Array } {
  const buf = readFileSync(path);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as Record<string, Entry>;
  const base = 8 + n;
  const entries = Object.entries(header).filter(([k]) => k !== '__metadata__');
  const f32 = (name: string): Float32Array => {
    const e = header[name];
    const bytes = buf.subarray(base + e.data_offsets[0], base + e.data_offsets[1]);
    const count = e.shape.reduce((a, b) => a * b, 1);
    const out = new Float32Array(count);
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    for (let i = 0; i < count; i++) {
      if (e.dtype === 'BF16') out[i] = new Float32Array(new Uint32Array([dv.getUint16(2 * i, true) << 16]).buffer)[0];
      else if (e.dtype === 'F32') out[i] = dv.getFloat32(4 * i, true);
      else throw new Error(`unsupported dtype ${e.dtype}`);
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
