/**
 * Typed errors of image / video preprocessing. Each has a stable `code` (see shared/errors.ts):
 * a server maps them to a 4xx answer, a UI to a message, without parsing text.
 */
import { VlmeshError } from '../../errors.ts';

/** The decoded (or announced) image has more pixels than the configured limit. Checked before any resize. */
export class ImageTooLargeError extends VlmeshError {
  readonly width: number;
  readonly height: number;
  readonly maxPixels: number;
  constructor(width: number, height: number, maxPixels: number) {
    super(
      'IMAGE_TOO_LARGE',
      `image is ${width}×${height} = ${width * height} pixels, above the limit of ${maxPixels}; downscale it before sending`,
    );
    this.width = width;
    this.height = height;
    this.maxPixels = maxPixels;
  }
}

/** max(h, w) / min(h, w) is above 200: the official processor refuses such images too. */
export class AspectRatioError extends VlmeshError {
  readonly width: number;
  readonly height: number;
  constructor(height: number, width: number, limit: number) {
    super(
      'ASPECT_RATIO_TOO_LARGE',
      `image aspect ratio ${Math.max(height, width) / Math.min(height, width)} (${width}×${height}) is above ${limit}; crop or pad it`,
    );
    this.width = width;
    this.height = height;
  }
}

/** A video frame side is smaller than the resize factor (the video smart_resize requires h, w ≥ factor). */
export class ImageTooSmallError extends VlmeshError {
  constructor(message: string) {
    super('IMAGE_TOO_SMALL', message);
  }
}

/** No decoder here handles these bytes. `format` is what the magic bytes say ('unknown' if nothing matched). */
export class UnsupportedMediaError extends VlmeshError {
  readonly format: string;
  constructor(format: string, message: string) {
    super('UNSUPPORTED_MEDIA', message);
    this.format = format;
  }
}

/** The file claims a supported format but is damaged (bad signature, CRC, truncated data, bad filter byte). */
export class ImageDecodeError extends VlmeshError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('IMAGE_DECODE', message, options);
  }
}

/** Arguments to a preprocessing function are inconsistent (frame sizes, fps, counts, buffer lengths). */
export class PreprocessArgumentError extends VlmeshError {
  constructor(message: string) {
    super('PREPROCESS_ARGUMENT', message);
  }
}
