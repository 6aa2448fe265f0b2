/**
 * Input size guard: an upload's pixel count is checked against a configurable limit before it is
 * decoded (when the header tells the size) and again before any resize, so a huge or forged image
 * cannot make the server allocate gigabytes.
 */
import { ImageTooLargeError } from './errors.ts';

/**
 * Default limit on width·height of an input image: 8192×8192 = 64 Mpx (192 MiB as RGB). The
 * official processor's own cap is on its *output* (16.7 Mpx) and it downsizes anything bigger, so
 * this limit only bounds work and memory; lower it on small servers.
 */
export const DEFAULT_MAX_INPUT_PIXELS = 8192 * 8192;

/** Throws ImageTooLargeError when width·height > maxPixels. */
export function assertWithinPixelLimit(width: number, height: number, maxPixels = DEFAULT_MAX_INPUT_PIXELS): void {
  if (width * height > maxPixels) throw new ImageTooLargeError(width, height, maxPixels);
}
