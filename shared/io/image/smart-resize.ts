/**
 * The target size of the official Qwen3-VL processors (`smart_resize` of transformers'
 * Qwen2VLImageProcessor and Qwen3VLVideoProcessor), bit for bit.
 *
 * Image: snap h and w to multiples of `factor` (= patch 16 × merge 2 = 32) with Python's
 * round-half-to-even (528/32 = 16.5 → 16 → 512), then scale both by one β if the area leaves
 * [minPixels, maxPixels]:
 *
 *   h' = round(h/f)·f, w' = round(w/f)·f
 *   h'·w' > max:  β = √(h·w / max),  h' = max(f, ⌊h/β/f⌋·f)   (same for w)
 *   h'·w' < min:  β = √(min / (h·w)), h' = ⌈h·β/f⌉·f            (same for w)
 *
 * Video: the same, but the budget covers all frames: the test uses t' = round(T/2)·2 frames and β
 * uses the sampled frame count T, so long videos get small frames.
 *
 * Every step uses the same IEEE double operations in the same order as the Python code (integer
 * products are exact below 2^53, and Python's int / int is correctly rounded like JS division).
 */
import { AspectRatioError, ImageTooSmallError, PreprocessArgumentError } from './errors.ts';
import { roundHalfEven } from './pyround.ts';

/** The official processors refuse images whose long side is more than 200 times the short side. */
export const MAX_ASPECT_RATIO = 200;

export interface SmartResizeOptions {
  /** Patch size × merge size (16 × 2 = 32 for Qwen3-VL). */
  factor: number;
  /** Lower bound of the area (image) or of frames × area (video). `size.shortest_edge` in the config. */
  minPixels: number;
  /** Upper bound of the area (image) or of frames × area (video). `size.longest_edge` in the config. */
  maxPixels: number;
}

export interface SmartResizeVideoOptions extends SmartResizeOptions {
  /** Frames per temporal patch (2). */
  temporalPatch: number;
}

function checkPositiveInt(name: string, v: number): void {
  if (!Number.isSafeInteger(v) || v <= 0) throw new PreprocessArgumentError(`${name} must be a positive integer, got ${v}`);
}

function checkAspect(h: number, w: number): void {
  if (Math.max(h, w) / Math.min(h, w) > MAX_ASPECT_RATIO) throw new AspectRatioError(h, w, MAX_ASPECT_RATIO);
}

/**
 * Target (height, width) of the image processor for an h×w image.
 *
 * @throws AspectRatioError when max(h, w) / min(h, w) > 200.
 * @example smartResize(200, 300, { factor: 32, minPixels: 65536, maxPixels: 16777216 }) // [224, 320]
 */
export function smartResize(height: number, width: number, opts: SmartResizeOptions): [number, number] {
  checkPositiveInt('height', height);
  checkPositiveInt('width', width);
  const { factor, minPixels, maxPixels } = opts;
  checkPositiveInt('factor', factor);
  checkAspect(height, width);
  let hBar = roundHalfEven(height / factor) * factor;
  let wBar = roundHalfEven(width / factor) * factor;
  if (hBar * wBar > maxPixels) {
    const beta = Math.sqrt((height * width) / maxPixels);
    hBar = Math.max(factor, Math.floor(height / beta / factor) * factor);
    wBar = Math.max(factor, Math.floor(width / beta / factor) * factor);
  } else if (hBar * wBar < minPixels) {
    const beta = Math.sqrt(minPixels / (height * width));
    hBar = Math.ceil((height * beta) / factor) * factor;
    wBar = Math.ceil((width * beta) / factor) * factor;
  }
  return [hBar, wBar];
}

/**
 * Target (height, width) of the video processor for `numFrames` sampled frames of h×w.
 * The pixel budget is across frames: round(T / temporalPatch)·temporalPatch · h' · w'.
 *
 * @throws ImageTooSmallError when h or w is below `factor` or fewer frames than `temporalPatch`.
 * @throws AspectRatioError when max(h, w) / min(h, w) > 200.
 * @example smartResizeVideo(4, 64, 64, { temporalPatch: 2, factor: 32, minPixels: 131072, maxPixels: 786432 }) // [192, 192]
 */
export function smartResizeVideo(
  numFrames: number,
  height: number,
  width: number,
  opts: SmartResizeVideoOptions,
): [number, number] {
  checkPositiveInt('numFrames', numFrames);
  checkPositiveInt('height', height);
  checkPositiveInt('width', width);
  const { factor, minPixels, maxPixels, temporalPatch } = opts;
  checkPositiveInt('factor', factor);
  checkPositiveInt('temporalPatch', temporalPatch);
  if (numFrames < temporalPatch) {
    throw new ImageTooSmallError(`a video needs at least ${temporalPatch} frames, got ${numFrames}`);
  }
  if (height < factor || width < factor) {
    throw new ImageTooSmallError(`video frames must be at least ${factor}×${factor}, got ${width}×${height}`);
  }
  checkAspect(height, width);
  let hBar = roundHalfEven(height / factor) * factor;
  let wBar = roundHalfEven(width / factor) * factor;
  const tBar = roundHalfEven(numFrames / temporalPatch) * temporalPatch;
  if (tBar * hBar * wBar > maxPixels) {
    const beta = Math.sqrt((numFrames * height * width) / maxPixels);
    hBar = Math.max(factor, Math.floor(height / beta / factor) * factor);
    wBar = Math.max(factor, Math.floor(width / beta / factor) * factor);
  } else if (tBar * hBar * wBar < minPixels) {
    const beta = Math.sqrt(minPixels / (numFrames * height * width));
    hBar = Math.ceil((height * beta) / factor) * factor;
    wBar = Math.ceil((width * beta) / factor) * factor;
  }
  return [hBar, wBar];
}
