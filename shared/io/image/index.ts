/** Image / video input for Qwen3-VL: decoding, size guard, smart resize, bicubic resize, patchify, frame sampling. */
export { BrowserImageDecoder } from './decode-browser.ts';
export {
  type DecodeImageOptions,
  decodeImage,
  IMAGE_MIME,
  type ImageDecoder,
  ImageFormat,
  PngImageDecoder,
  probeImageSize,
  sniffImageFormat,
} from './decode.ts';
export {
  AspectRatioError,
  ImageDecodeError,
  ImageTooLargeError,
  ImageTooSmallError,
  PreprocessArgumentError,
  UnsupportedMediaError,
} from './errors.ts';
export { applyExifOrientation, ExifOrientation, orientationFromTiff, readExifOrientation } from './exif.ts';
export { inflateZlib } from './inflate.ts';
export { assertWithinPixelLimit, DEFAULT_MAX_INPUT_PIXELS } from './limits.ts';
export {
  normalizationTable,
  type PatchifyOptions,
  type PatchifyResult,
  patchifyFrames,
  QWEN3_VL_PATCHIFY,
} from './patchify.ts';
export { AlphaMode, decodePng, isPng, PngColorType, type PngDecodeOptions, type PngHeader, readPngHeader } from './png.ts';
export {
  type PreprocessedVision,
  type PreprocessLimits,
  preprocessImage,
  preprocessVideo,
  processorConfigFromJson,
  QWEN3_VL_IMAGE_CONFIG,
  QWEN3_VL_VIDEO_CONFIG,
  type VisionProcessorConfig,
} from './preprocess.ts';
export { formatFixed, roundHalfEven } from './pyround.ts';
export { type AxisTaps, bicubicAxisTaps, type RgbImage, resizeBicubic } from './resize.ts';
export {
  MAX_ASPECT_RATIO,
  type SmartResizeOptions,
  type SmartResizeVideoOptions,
  smartResize,
  smartResizeVideo,
} from './smart-resize.ts';
export {
  DEFAULT_VIDEO_FPS,
  formatTimestamp,
  linspace,
  type SampleFramesOptions,
  sampleFrameIndices,
  temporalPatchTimestamps,
} from './video.ts';
