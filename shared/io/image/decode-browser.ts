/**
 * Browser image decoder: `createImageBitmap` (EXIF orientation applied, no colour management,
 * like PIL + `exif_transpose` in the official loader) drawn onto an OffscreenCanvas and read back.
 *
 * Differences from the official PIL path to know about: the canvas stores premultiplied alpha, so
 * the colour of transparent pixels is lost (PIL's `convert("RGB")` keeps it), and the browser's
 * JPEG decoder may differ from libjpeg by ±1 on some pixels.
 */
import { ImageDecodeError } from './errors.ts';
import { type ImageDecoder, ImageFormat } from './decode.ts';
import type { RgbImage } from './resize.ts';

/** Decodes PNG, JPEG, WebP, GIF (first frame), BMP and AVIF with the browser's decoders. */
export class BrowserImageDecoder implements ImageDecoder {
  readonly formats = [ImageFormat.Png, ImageFormat.Jpeg, ImageFormat.Webp, ImageFormat.Gif, ImageFormat.Bmp, ImageFormat.Avif] as const;

  /** True when this runtime has createImageBitmap and OffscreenCanvas. */
  static available(): boolean {
    return typeof createImageBitmap === 'function' && typeof OffscreenCanvas === 'function';
  }

  async decode(bytes: Uint8Array, mimeType?: string): Promise<RgbImage> {
    if (!BrowserImageDecoder.available()) throw new ImageDecodeError('createImageBitmap / OffscreenCanvas are not available here');
    let bitmap: ImageBitmap;
    try {
      const blob = new Blob([new Uint8Array(bytes)], mimeType ? { type: mimeType } : {});
      bitmap = await createImageBitmap(blob, {
        imageOrientation: 'from-image',
        colorSpaceConversion: 'none',
        premultiplyAlpha: 'none',
      });
    } catch (e) {
      throw new ImageDecodeError(`the browser could not decode the image: ${(e as Error)?.message ?? e}`, { cause: e });
    }
    try {
      const { width, height } = bitmap;
      const canvas = new OffscreenCanvas(width, height);
      const ctx = canvas.getContext('2d', { willReadFrequently: true });
      if (!ctx) throw new ImageDecodeError('no 2D context on OffscreenCanvas');
      ctx.drawImage(bitmap, 0, 0);
      const rgba = ctx.getImageData(0, 0, width, height).data;
      const rgb = new Uint8Array(width * height * 3);
      for (let i = 0, n = width * height; i < n; i++) {
        rgb[3 * i] = rgba[4 * i];
        rgb[3 * i + 1] = rgba[4 * i + 1];
        rgb[3 * i + 2] = rgba[4 * i + 2];
      }
      return { width, height, data: rgb };
    } finally {
      bitmap.close();
    }
  }
}
