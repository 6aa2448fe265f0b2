/**
 * fp32 reference of rotate-half rotary embeddings: angle = fround(f32(pos)·freq), cos/sin in f64
 * of that f32 angle (what torch's float32 cos/sin return to within an ulp), products in f64.
 */
import type { RopeTables } from '../kernels/rope/tables.ts';

/** Rotates a copy of x `[T, H, hd]` by positions `[axes, T]`. */
export function rotaryRef(x: Float32Array, T: number, H: number, hd: number, positions: ArrayLike<number>, tables: RopeTables): Float32Array {
  const out = Float32Array.from(x);
  const half = hd / 2;
  for (let t = 0; t < T; t++) {
    for (let j = 0; j < half; j++) {
      const angle = Math.fround(Math.fround(positions[tables.axisOf[j] * T + t]) * tables.freqs[j]);
      const c = Math.cos(angle);
      const s = Math.sin(angle);
      for (let h = 0; h < H; h++) {
        const base = (t * H + h) * hd;
        const x1 = x[base + j];
        const x2 = x[base + j + half];
        out[base + j] = x1 * c - x2 * s;
        out[base + j + half] = x2 * c + x1 * s;
      }
    }
  }
  return out;
}
