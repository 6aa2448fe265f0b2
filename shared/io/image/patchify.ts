/**
 * Normalization and patchify: RGB uint8 frames → `pixel_values [P, 3·T·p·p]` for the vision
 * encoder, bit-equal to the official processors (transformers Qwen2VLImageProcessor /
 * Qwen3VLVideoProcessor, torchvision backend).
 *
 * Normalization: the official code fuses rescale (1/255) and normalize (mean, std) into one
 * float32 `(x − mean')/std'` with mean' = f32(mean)·f32(1/rescale) and std' likewise, i.e.
 * (x − 127.5)/127.5 for Qwen3-VL. Only 256 inputs exist per channel, so a table holds them.
 *
 * Layout (p = patch 16, m = merge 2, T = temporal patch 2, C = 3):
 *
 *   frames [F, H, W, C] (F padded to a multiple of T by repeating the last frame)
 *   → view [gt, T, C, gh/m, m, p, gw/m, m, p]            gh = H/p, gw = W/p, gt = F/T
 *   → permute to [gt, gh/m, gw/m, m, m | C, T, p, p]     rows | columns of pixel_values
 *
 *   patch order (one temporal patch, gh = gw = 4):     columns of one row (1536):
 *     0  1 | 4  5                                        c=0: t=0: 16×16 (y, x) row-major,
 *     2  3 | 6  7                                             t=1: 16×16 …
 *     ─────┼─────   (2×2 merge windows, row-major;        c=1: …, c=2: …
 *     8  9 |12 13    the 4 patches of a window
 *    10 11 |14 15    row-major)
 */
import { PreprocessArgumentError } from './errors.ts';

export interface PatchifyOptions {
  /** Spatial patch side (16). */
  patchSize: number;
  /** Spatial merge size (2): patches are ordered by m×m windows. */
  mergeSize: number;
  /** Frames per temporal patch (2). */
  temporalPatchSize: number;
  /** Per-channel mean (default [0.5, 0.5, 0.5]). */
  imageMean?: readonly number[];
  /** Per-channel std (default [0.5, 0.5, 0.5]). */
  imageStd?: readonly number[];
  /** Rescale factor applied before normalization (default 1/255). */
  rescaleFactor?: number;
}

export interface PatchifyResult {
  /** [P, C·T·p·p] float32, row-major. */
  pixelValues: Float32Array;
  /** [t, h, w] in patches. */
  gridThw: [number, number, number];
}

export const QWEN3_VL_PATCHIFY: PatchifyOptions = { patchSize: 16, mergeSize: 2, temporalPatchSize: 2 };

const f32 = Math.fround;

/**
 * The 256-entry float32 table per channel of the fused rescale+normalize:
 * f32(f32(x − mean') / std') with mean' = f32(f32(mean)·f32(1/rescale)), std' likewise.
 */
export function normalizationTable(
  mean: readonly number[] = [0.5, 0.5, 0.5],
  std: readonly number[] = [0.5, 0.5, 0.5],
  rescaleFactor = 1 / 255,
): Float32Array[] {
  const inv = f32(1.0 / rescaleFactor);
  return [0, 1, 2].map((c) => {
    const m = f32(f32(mean[c]) * inv);
    const s = f32(f32(std[c]) * inv);
    const t = new Float32Array(256);
    // x − m is rounded to float32 first (a separate tensor op), then the division is rounded.
    for (let x = 0; x < 256; x++) t[x] = f32(x - m) / s;
    return t;
  });
}

/**
 * Normalizes and patchifies same-size RGB frames (HWC uint8 each). The frame list is padded to a
 * multiple of `temporalPatchSize` by repeating the last frame (an image is one frame → 2 copies).
 *
 * @throws PreprocessArgumentError when sizes are not multiples of patch·merge or frames differ in size.
 * @example const { pixelValues, gridThw } = patchifyFrames([rgb], 224, 320, QWEN3_VL_PATCHIFY); // gridThw [1, 14, 20]
 */
export function patchifyFrames(
  frames: readonly Uint8Array[],
  height: number,
  width: number,
  opts: PatchifyOptions = QWEN3_VL_PATCHIFY,
): PatchifyResult {
  const { patchSize: p, mergeSize: m, temporalPatchSize: T } = opts;
  if (frames.length === 0) throw new PreprocessArgumentError('patchify needs at least one frame');
  if (height % (p * m) !== 0 || width % (p * m) !== 0) {
    throw new PreprocessArgumentError(`frame size ${height}×${width} must be a multiple of patch·merge = ${p * m}; resize first`);
  }
  const frameLen = height * width * 3;
  frames.forEach((f, i) => {
    if (f.length !== frameLen) throw new PreprocessArgumentError(`frame ${i} has ${f.length} bytes, expected ${height}×${width}×3 = ${frameLen}`);
  });
  const padded = [...frames];
  while (padded.length % T !== 0) padded.push(frames[frames.length - 1]);
  const table = normalizationTable(opts.imageMean, opts.imageStd, opts.rescaleFactor);

  const gt = padded.length / T;
  const gh = height / p;
  const gw = width / p;
  const rowLen = 3 * T * p * p;
  const out = new Float32Array(gt * gh * gw * rowLen);
  let row = 0;
  for (let t = 0; t < gt; t++) {
    for (let bh = 0; bh < gh / m; bh++) {
      for (let bw = 0; bw < gw / m; bw++) {
        for (let mh = 0; mh < m; mh++) {
          for (let mw = 0; mw < m; mw++, row++) {
            const y0 = (bh * m + mh) * p; // top-left pixel of this patch
            const x0 = (bw * m + mw) * p;
            let o = row * rowLen; // columns: [C, T, p, p]
            for (let c = 0; c < 3; c++) {
              const lut = table[c];
              for (let tt = 0; tt < T; tt++) {
                const frame = padded[t * T + tt];
                if (tt > 0 && frame === padded[t * T + tt - 1]) {
                  // Repeated frame (an image, or video padding): copy the block just written.
                  out.copyWithin(o, o - p * p, o);
                  o += p * p;
                  continue;
                }
                for (let y = 0; y < p; y++) {
                  let src = ((y0 + y) * width + x0) * 3 + c;
                  for (let x = 0; x < p; x++, src += 3) out[o++] = lut[frame[src]];
                }
              }
            }
          }
        }
      }
    }
  }
  return { pixelValues: out, gridThw: [gt, gh, gw] };
}
