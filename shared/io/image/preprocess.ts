/**
 * The whole image / video preprocessing of Qwen3-VL: decoded RGB → smart_resize target → bicubic
 * resize → normalize + patchify, equal to transformers' Qwen2VLImageProcessor (torchvision backend)
 * and Qwen3VLVideoProcessor with the published configs.
 */
import { PreprocessArgumentError } from './errors.ts';
import { assertWithinPixelLimit, DEFAULT_MAX_INPUT_PIXELS } from './limits.ts';
import { type PatchifyResult, patchifyFrames } from './patchify.ts';
import { type RgbImage, resizeBicubic } from './resize.ts';
import { smartResize, smartResizeVideo } from './smart-resize.ts';

/** Settings of an image or video processor (preprocessor_config.json / video_preprocessor_config.json). */
export interface VisionProcessorConfig {
  patchSize: number;
  mergeSize: number;
  temporalPatchSize: number;
  /** `size.shortest_edge` (an area, despite the name). */
  minPixels: number;
  /** `size.longest_edge` (an area, despite the name). */
  maxPixels: number;
  imageMean: readonly number[];
  imageStd: readonly number[];
  rescaleFactor: number;
}

const COMMON = {
  patchSize: 16,
  mergeSize: 2,
  temporalPatchSize: 2,
  imageMean: [0.5, 0.5, 0.5],
  imageStd: [0.5, 0.5, 0.5],
  rescaleFactor: 1 / 255,
} as const;

/** The published Qwen3-VL preprocessor_config.json. */
export const QWEN3_VL_IMAGE_CONFIG: VisionProcessorConfig = { ...COMMON, minPixels: 65536, maxPixels: 16777216 };
/** The published Qwen3-VL video_preprocessor_config.json (the class defaults are 131072 / 786432). */
export const QWEN3_VL_VIDEO_CONFIG: VisionProcessorConfig = { ...COMMON, minPixels: 4096, maxPixels: 25165824 };

/**
 * Reads a processor config JSON (`size.{shortest,longest}_edge` or legacy `min_pixels`/`max_pixels`,
 * `patch_size`, `merge_size`, `temporal_patch_size`, `image_mean`, `image_std`, `rescale_factor`);
 * missing fields take `defaults`.
 */
export function processorConfigFromJson(json: Record<string, unknown>, defaults: VisionProcessorConfig): VisionProcessorConfig {
  const size = (json.size ?? {}) as Record<string, unknown>;
  const num = (v: unknown, d: number): number => (typeof v === 'number' ? v : d);
  const arr = (v: unknown, d: readonly number[]): readonly number[] =>
    Array.isArray(v) && v.length === 3 && v.every((x) => typeof x === 'number') ? v : typeof v === 'number' ? [v, v, v] : d;
  return {
    patchSize: num(json.patch_size, defaults.patchSize),
    mergeSize: num(json.merge_size, defaults.mergeSize),
    temporalPatchSize: num(json.temporal_patch_size, defaults.temporalPatchSize),
    minPixels: num(size.shortest_edge, num(json.min_pixels, defaults.minPixels)),
    maxPixels: num(size.longest_edge, num(json.max_pixels, defaults.maxPixels)),
    imageMean: arr(json.image_mean, defaults.imageMean),
    imageStd: arr(json.image_std, defaults.imageStd),
    rescaleFactor: num(json.rescale_factor, defaults.rescaleFactor),
  };
}

export interface PreprocessLimits {
  /** Limit on input width·height, checked before resizing (default DEFAULT_MAX_INPUT_PIXELS). */
  maxInputPixels?: number;
}

export interface PreprocessedVision extends PatchifyResult {
  /** Size the frames were resized to (a multiple of patch·merge). */
  resizedHeight: number;
  resizedWidth: number;
  /** LLM tokens this input becomes: t·h·w / merge². */
  numTokens: number;
}

function patchOpts(cfg: VisionProcessorConfig) {
  return {
    patchSize: cfg.patchSize,
    mergeSize: cfg.mergeSize,
    temporalPatchSize: cfg.temporalPatchSize,
    imageMean: cfg.imageMean,
    imageStd: cfg.imageStd,
    rescaleFactor: cfg.rescaleFactor,
  };
}

function finish(r: PatchifyResult, h: number, w: number, cfg: VisionProcessorConfig): PreprocessedVision {
  const [t, gh, gw] = r.gridThw;
  return { ...r, resizedHeight: h, resizedWidth: w, numTokens: (t * gh * gw) / (cfg.mergeSize * cfg.mergeSize) };
}

/**
 * One image → `pixel_values [P, 1536]` and `image_grid_thw`, as the official image processor.
 *
 * @throws ImageTooLargeError (input above the limit), AspectRatioError (ratio > 200).
 * @example const { pixelValues, gridThw, numTokens } = preprocessImage(await decodePng(bytes));
 */
export function preprocessImage(
  image: RgbImage,
  cfg: VisionProcessorConfig = QWEN3_VL_IMAGE_CONFIG,
  limits: PreprocessLimits = {},
): PreprocessedVision {
  assertWithinPixelLimit(image.width, image.height, limits.maxInputPixels ?? DEFAULT_MAX_INPUT_PIXELS);
  const [h, w] = smartResize(image.height, image.width, {
    factor: cfg.patchSize * cfg.mergeSize,
    minPixels: cfg.minPixels,
    maxPixels: cfg.maxPixels,
  });
  const resized = h === image.height && w === image.width ? image : resizeBicubic(image, h, w);
  return finish(patchifyFrames([resized.data], h, w, patchOpts(cfg)), h, w, cfg);
}

/**
 * Sampled video frames (all the same size; see video.ts for which frames) → `pixel_values_videos`
 * and `video_grid_thw`, as the official video processor. The budget is across frames.
 *
 * @throws ImageTooLargeError, AspectRatioError, ImageTooSmallError (frames below 32 px or fewer than 2).
 */
export function preprocessVideo(
  frames: readonly RgbImage[],
  cfg: VisionProcessorConfig = QWEN3_VL_VIDEO_CONFIG,
  limits: PreprocessLimits = {},
): PreprocessedVision {
  if (frames.length === 0) throw new PreprocessArgumentError('a video needs at least one frame');
  const { width, height } = frames[0];
  for (const [i, f] of frames.entries()) {
    if (f.width !== width || f.height !== height) {
      throw new PreprocessArgumentError(`video frame ${i} is ${f.width}×${f.height}, frame 0 is ${width}×${height}`);
    }
  }
  assertWithinPixelLimit(width, height, limits.maxInputPixels ?? DEFAULT_MAX_INPUT_PIXELS);
  const [h, w] = smartResizeVideo(frames.length, height, width, {
    temporalPatch: cfg.temporalPatchSize,
    factor: cfg.patchSize * cfg.mergeSize,
    minPixels: cfg.minPixels,
    maxPixels: cfg.maxPixels,
  });
  const data = frames.map((f) => (h === height && w === width ? f.data : resizeBicubic(f, h, w).data));
  return finish(patchifyFrames(data, h, w, patchOpts(cfg)), h, w, cfg);
}
