/**
 * Plain TypeScript references of the normalisation kernels. Sums and the normalisation run in f64
 * (the truth the GPU's f32 reductions are compared against); results are returned as f32.
 *
 * Rows are read at `xOffset + r·ldx` and written densely as `[rows, n]`.
 */
export interface NormRefArgs {
  x: Float32Array;
  rows: number;
  n: number;
  eps: number;
  ldx?: number;
  xOffset?: number;
}

/**
 * Qwen3 RMSNorm: y[r, :] = x[r, :] · 1/√(mean(x[r, :]²) + eps) · weight[:].
 *
 * @example
 * rmsNormRef({ x, weight, rows: tokens, n: hidden, eps: 1e-6 });
 */
export function rmsNormRef(a: NormRefArgs & { weight: Float32Array }): Float32Array {
  const { rows, n } = a;
  const ldx = a.ldx ?? n;
  const xo = a.xOffset ?? 0;
  const y = new Float32Array(rows * n);
  for (let r = 0; r < rows; r++) {
    const base = xo + r * ldx;
    let ss = 0;
    for (let c = 0; c < n; c++) ss += a.x[base + c] * a.x[base + c];
    const scale = 1 / Math.sqrt(ss / n + a.eps);
    for (let c = 0; c < n; c++) y[r * n + c] = a.x[base + c] * scale * a.weight[c];
  }
  return y;
}

/**
 * torch LayerNorm over the last dim: y = (x − mean)/√(var + eps)·weight + bias, with the biased
 * variance (divided by n).
 */
export function layerNormRef(a: NormRefArgs & { weight: Float32Array; bias: Float32Array }): Float32Array {
  const { rows, n } = a;
  const ldx = a.ldx ?? n;
  const xo = a.xOffset ?? 0;
  const y = new Float32Array(rows * n);
  for (let r = 0; r < rows; r++) {
    const base = xo + r * ldx;
    let s = 0;
    for (let c = 0; c < n; c++) s += a.x[base + c];
    const mean = s / n;
    let v = 0;
    for (let c = 0; c < n; c++) v += (a.x[base + c] - mean) ** 2;
    const rstd = 1 / Math.sqrt(v / n + a.eps);
    for (let c = 0; c < n; c++) y[r * n + c] = (a.x[base + c] - mean) * rstd * a.weight[c] + a.bias[c];
  }
  return y;
}
