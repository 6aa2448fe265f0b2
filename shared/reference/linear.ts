/**
 * fp32 reference of `linear`: y[m, n] = Σ_k x[m, k]·W[n, k] + b[n], W in HF `[out, in]` layout.
 * Accumulates in f64 (the truth the GPU's f32 sums are compared against).
 */
export interface LinearRefArgs {
  x: Float32Array;
  w: Float32Array;
  bias?: Float32Array;
  M: number;
  N: number;
  K: number;
  ldx?: number;
  xOffset?: number;
}

/** Returns y as a dense [M, N] array. */
export function linearRef(a: LinearRefArgs): Float32Array {
  const { M, N, K } = a;
  const ldx = a.ldx ?? K;
  const xo = a.xOffset ?? 0;
  const y = new Float32Array(M * N);
  for (let m = 0; m < M; m++) {
    const xr = xo + m * ldx;
    for (let n = 0; n < N; n++) {
      let s = 0;
      const wr = n * K;
      for (let k = 0; k < K; k++) s += a.x[xr + k] * a.w[wr + k];
      y[m * N + n] = s + (a.bias ? a.bias[n] : 0);
    }
  }
  return y;
}
