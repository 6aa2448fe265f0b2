/**
 * Bicubic resize of an RGB uint8 image, computed the way the official image processor does it:
 * torchvision `resize(uint8 tensor, BICUBIC, antialias=True)` on CPU, which runs ATen's native
 * uint8 `_upsample_bicubic2d_aa` (the Pillow-SIMD algorithm). The goal is the same bytes.
 *
 * Facts of that kernel this code reproduces:
 * - Separable: a horizontal pass (W → W') first, then a vertical pass (H → H'); a pass whose size
 *   does not change is skipped. The intermediate image is **uint8** (rounded and clamped), as in
 *   Pillow.
 * - Filter: Keys cubic with a = −0.5 on |x| < 2. When downscaling (scale = in/out > 1) the
 *   support widens to 2·scale and the filter is evaluated at distance / scale (antialias); when
 *   upscaling the support is 2.
 * - Pixel centers (align_corners = False): output i samples around center = scale·(i + ½); the taps
 *   are input j ∈ [xmin, xmin + xsize) with xmin = max(trunc(center − support + ½), 0),
 *   xsize = min(trunc(center + support + ½), in) − xmin, weight ∝ filter((j − center + ½)/s),
 *   normalized to sum 1 (so border taps are renormalized, not clamped/replicated).
 * - Fixed point: the double weights of one pass are scaled by 2^p and rounded to int16, where p is
 *   the largest precision (≤ 22) with round(max weight · 2^p) < 2^15; each output is
 *   clamp((2^(p−1) + Σ pixel·weight) >> p, 0, 255).
 *
 *   input row (W=6), output pixel i, scale 1.5, support 3:
 *     center = 1.5·(i+½)      taps j = xmin … xmin+xsize−1
 *     ├──┼──┼──┼──┼──┼──┤
 *        ↑xmin     ↑center    w_j = cubic((j − center + ½) / 1.5) / Σ
 */
import { PreprocessArgumentError } from './errors.ts';

/** An interleaved RGB uint8 image, row-major: data[(y·width + x)·3 + c]. */
export interface RgbImage {
  width: number;
  height: number;
  data: Uint8Array;
}

const CUBIC_A = -0.5;

/** Keys cubic convolution kernel (a = −0.5), as ATen's `aa_filter` for bicubic. */
function cubicFilter(x: number): number {
  x = Math.abs(x);
  if (x < 1.0) return ((CUBIC_A + 2) * x - (CUBIC_A + 3)) * x * x + 1;
  if (x < 2.0) return ((CUBIC_A * x - 5 * CUBIC_A) * x + 8 * CUBIC_A) * x - 4 * CUBIC_A;
  return 0.0;
}

/** Taps of one resized axis: output i reads input [xmin[i], xmin[i] + xsize[i]) with weights[i·ksize + j]. */
export interface AxisTaps {
  xmin: Int32Array;
  xsize: Int32Array;
  /** int16 fixed-point weights, `ksize` per output (zero-padded). */
  weights: Int16Array;
  ksize: number;
  /** Fixed-point precision p: weights are w·2^p. */
  precision: number;
}

/** Computes the antialiased bicubic taps of one axis (in → out), as ATen's `_compute_index_ranges_int16_weights`. */
export function bicubicAxisTaps(inSize: number, outSize: number): AxisTaps {
  const scale = inSize / outSize;
  const support = scale >= 1.0 ? 4 * 0.5 * scale : 4 * 0.5;
  const ksize = Math.ceil(support) * 2 + 1;
  const invscale = scale >= 1.0 ? 1.0 / scale : 1.0;
  const xmin = new Int32Array(outSize);
  const xsize = new Int32Array(outSize);
  const wf = new Float64Array(outSize * ksize);
  let wtMax = 0.0;
  for (let i = 0; i < outSize; i++) {
    const center = scale * (i + 0.5);
    const lo = Math.max(Math.trunc(center - support + 0.5), 0);
    let n = Math.min(Math.trunc(center + support + 0.5), inSize) - lo;
    n = Math.min(Math.max(n, 0), ksize); // rare precision overshoot, clipped as ATen does
    xmin[i] = lo;
    xsize[i] = n;
    const base = i * ksize;
    let total = 0.0;
    for (let j = 0; j < n; j++) {
      const w = cubicFilter((j + lo - center + 0.5) * invscale);
      wf[base + j] = w;
      total += w;
    }
    if (total !== 0.0) {
      for (let j = 0; j < n; j++) {
        wf[base + j] /= total;
        wtMax = Math.max(wtMax, wf[base + j]);
      }
    }
  }
  let precision = 0;
  for (; precision < 22; precision++) {
    const next = Math.trunc(0.5 + wtMax * 2 ** (precision + 1));
    if (next >= 1 << 15) break;
  }
  const weights = new Int16Array(outSize * ksize);
  const mul = 2 ** precision;
  for (let k = 0; k < weights.length; k++) {
    const v = wf[k] * mul;
    weights[k] = v < 0 ? Math.trunc(-0.5 + v) : Math.trunc(0.5 + v);
  }
  return { xmin, xsize, weights, ksize, precision };
}

/** Horizontal pass: [H, Win, 3] → [H, Wout, 3]. */
function resampleHorizontal(src: Uint8Array, height: number, inW: number, taps: AxisTaps): Uint8Array {
  const outW = taps.xmin.length;
  const out = new Uint8Array(height * outW * 3);
  const { xmin, xsize, weights, ksize, precision } = taps;
  const half = 1 << (precision - 1);
  for (let y = 0; y < height; y++) {
    const rowIn = y * inW * 3;
    const rowOut = y * outW * 3;
    for (let x = 0; x < outW; x++) {
      let r = half;
      let g = half;
      let b = half;
      const kb = x * ksize;
      let p = rowIn + xmin[x] * 3;
      for (let j = 0, n = xsize[x]; j < n; j++, p += 3) {
        const w = weights[kb + j];
        r += src[p] * w;
        g += src[p + 1] * w;
        b += src[p + 2] * w;
      }
      const o = rowOut + x * 3;
      out[o] = clamp8(r >> precision);
      out[o + 1] = clamp8(g >> precision);
      out[o + 2] = clamp8(b >> precision);
    }
  }
  return out;
}

/** Vertical pass: [Hin, W, 3] → [Hout, W, 3]. */
function resampleVertical(src: Uint8Array, width: number, taps: AxisTaps): Uint8Array {
  const outH = taps.xmin.length;
  const rowLen = width * 3;
  const out = new Uint8Array(outH * rowLen);
  const acc = new Int32Array(rowLen);
  const { xmin, xsize, weights, ksize, precision } = taps;
  const half = 1 << (precision - 1);
  for (let y = 0; y < outH; y++) {
    acc.fill(half);
    const kb = y * ksize;
    for (let j = 0, n = xsize[y]; j < n; j++) {
      const w = weights[kb + j];
      const rowIn = (xmin[y] + j) * rowLen;
      for (let k = 0; k < rowLen; k++) acc[k] += src[rowIn + k] * w;
    }
    const rowOut = y * rowLen;
    for (let k = 0; k < rowLen; k++) out[rowOut + k] = clamp8(acc[k] >> precision);
  }
  return out;
}

function clamp8(v: number): number {
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

/**
 * Resizes an RGB uint8 image to (outHeight, outWidth) with antialiased bicubic interpolation,
 * equal to torchvision `resize(img, [outHeight, outWidth], BICUBIC, antialias=True)` on a uint8
 * CPU tensor (see the file comment). Returns a new image; the input is not modified.
 *
 * @example const small = resizeBicubic(img, 224, 320);
 */
export function resizeBicubic(image: RgbImage, outHeight: number, outWidth: number): RgbImage {
  const { width, height, data } = image;
  if (data.length !== width * height * 3) {
    throw new PreprocessArgumentError(`RGB image data has ${data.length} bytes, expected ${width}×${height}×3 = ${width * height * 3}`);
  }
  for (const [name, v] of [['outHeight', outHeight], ['outWidth', outWidth]] as const) {
    if (!Number.isSafeInteger(v) || v <= 0) throw new PreprocessArgumentError(`${name} must be a positive integer, got ${v}`);
  }
  let cur = data;
  if (outWidth !== width) cur = resampleHorizontal(cur, height, width, bicubicAxisTaps(width, outWidth));
  if (outHeight !== height) cur = resampleVertical(cur, outWidth, bicubicAxisTaps(height, outHeight));
  return { width: outWidth, height: outHeight, data: cur === data ? data.slice() : cur };
}
