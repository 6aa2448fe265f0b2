/**
 * fp64 reference of `linear` with a q4 weight: y[m, n] = Σ_k x[m, k]·(code(n, k) − 8)·scale(n, k/G)
 * + b[n]. The weight is dequantized exactly (in f64) from the codes and the scales as stored, so the
 * GPU kernels are compared against the quantized model, not against the original weights.
 */
import { q4Code, type Q4Host } from '../io/quant-q4.ts';

export interface LinearQ4RefArgs {
  x: Float32Array;
  w: Pick<Q4Host, 'N' | 'K' | 'groupSize' | 'codes' | 'scales'>;
  bias?: Float32Array;
  M: number;
  ldx?: number;
  xOffset?: number;
}

/** Returns y as a dense [M, N] array. */
export function linearQ4Ref(a: LinearQ4RefArgs): Float32Array {
  const { N, K, groupSize: G } = a.w;
  const { M } = a;
  const ldx = a.ldx ?? K;
  const xo = a.xOffset ?? 0;
  const groups = K / G;
  const wrow = new Float64Array(K);
  const y = new Float32Array(M * N);
  for (let n = 0; n < N; n++) {
    for (let k = 0; k < K; k++) wrow[k] = (q4Code(a.w.codes, K, n, k) - 8) * a.w.scales[n * groups + Math.floor(k / G)];
    for (let m = 0; m < M; m++) {
      const xr = xo + m * ldx;
      let s = 0;
      for (let k = 0; k < K; k++) s += a.x[xr + k] * wrow[k];
      y[m * N + n] = s + (a.bias ? a.bias[n] : 0);
    }
  }
  return y;
}
