/**
 * Image decoding front door: sniff the format from magic bytes, read the size from the header
 * when cheap (PNG, JPEG, GIF, WebP, BMP) and enforce the pixel limit before decoding, then hand
 * the bytes to the first registered decoder that handles the format.
 *
 * Decoders here: PNG (pure TypeScript, everywhere) and, in browsers, BrowserImageDecoder
 * (decode-browser.ts: everything the browser decodes, EXIF orientation applied). JPEG / WebP on
 * Node need a decoder plugged in through the same interface.
 */
import { ImageDecodeError, UnsupportedMediaError } from './errors.ts';
import { applyExifOrientation, readExifOrientation } from './exif.ts';
import { assertWithinPixelLimit, DEFAULT_MAX_INPUT_PIXELS } from './limits.ts';
import { AlphaMode, decodePng, isPng, readPngHeader } from './png.ts';
import type { RgbImage } from './resize.ts';

/** Formats recognised by their magic bytes. */
export enum ImageFormat {
  Png = 'png',
  Jpeg = 'jpeg',
  Gif = 'gif',
  Webp = 'webp',
  Bmp = 'bmp',
  Tiff = 'tiff',
  Avif = 'avif',
  Heif = 'heif',
  Jxl = 'jxl',
  Unknown = 'unknown',
}

/** MIME type of each format (for Blob construction and messages). */
export const IMAGE_MIME: Record<Exclude<ImageFormat, ImageFormat.Unknown>, string> = {
  [ImageFormat.Png]: 'image/png',
  [ImageFormat.Jpeg]: 'image/jpeg',
  [ImageFormat.Gif]: 'image/gif',
  [ImageFormat.Webp]: 'image/webp',
  [ImageFormat.Bmp]: 'image/bmp',
  [ImageFormat.Tiff]: 'image/tiff',
  [ImageFormat.Avif]: 'image/avif',
  [ImageFormat.Heif]: 'image/heif',
  [ImageFormat.Jxl]: 'image/jxl',
};

/** A decoder from encoded bytes to interleaved RGB uint8 (alpha dropped, EXIF orientation applied if it can). */
export interface ImageDecoder {
  /** Formats it can decode. */
  readonly formats: readonly ImageFormat[];
  decode(bytes: Uint8Array, mimeType?: string): Promise<RgbImage>;
}

function ascii(b: Uint8Array, start: number, len: number): string {
  let s = '';
  for (let i = start; i < start + len && i < b.length; i++) s += String.fromCharCode(b[i]);
  return s;
}

/** The format the magic bytes announce (ImageFormat.Unknown when nothing matches). */
export function sniffImageFormat(b: Uint8Array): ImageFormat {
  if (isPng(b)) return ImageFormat.Png;
  if (b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return ImageFormat.Jpeg;
  const head6 = ascii(b, 0, 6);
  if (head6 === 'GIF87a' || head6 === 'GIF89a') return ImageFormat.Gif;
  if (ascii(b, 0, 4) === 'RIFF' && ascii(b, 8, 4) === 'WEBP') return ImageFormat.Webp;
  if (ascii(b, 0, 2) === 'BM' && b.length >= 26) return ImageFormat.Bmp;
  const head4 = ascii(b, 0, 4);
  if (head4 === 'II*\0' || head4 === 'MM\0*') return ImageFormat.Tiff;
  if ((b.length >= 2 && b[0] === 0xff && b[1] === 0x0a) || ascii(b, 4, 4) === 'JXL ') return ImageFormat.Jxl;
  if (ascii(b, 4, 4) === 'ftyp') {
    const boxLen = Math.min(((b[0] << 24) | (b[1] << 16) | (b[2] << 8) | b[3]) >>> 0, b.length);
    const brands = [ascii(b, 8, 4)];
    for (let o = 16; o + 4 <= boxLen; o += 4) brands.push(ascii(b, o, 4));
    if (brands.includes('avif') || brands.includes('avis')) return ImageFormat.Avif;
    if (brands.some((x) => ['heic', 'heix', 'hevc', 'hevx', 'mif1', 'msf1'].includes(x))) return ImageFormat.Heif;
  }
  return ImageFormat.Unknown;
}

/**
 * Width and height from the file header, without decoding; undefined when the header is not
 * understood (then the limit is enforced after decoding). EXIF rotation does not change w·h.
 */
export function probeImageSize(b: Uint8Array, format = sniffImageFormat(b)): { width: number; height: number } | undefined {
  const le16 = (o: number) => b[o] | (b[o + 1] << 8);
  const be16 = (o: number) => (b[o] << 8) | b[o + 1];
  try {
    switch (format) {
      case ImageFormat.Png: {
        const h = readPngHeader(b);
        return { width: h.width, height: h.height };
      }
      case ImageFormat.Gif:
        return b.length >= 10 ? { width: le16(6), height: le16(8) } : undefined;
      case ImageFormat.Bmp: {
        if (b.length < 26) return undefined;
        const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
        return { width: Math.abs(dv.getInt32(18, true)), height: Math.abs(dv.getInt32(22, true)) };
      }
      case ImageFormat.Webp: {
        if (b.length < 30) return undefined;
        const chunk = ascii(b, 12, 4);
        if (chunk === 'VP8 ' && b[23] === 0x9d && b[24] === 0x01 && b[25] === 0x2a) {
          return { width: le16(26) & 0x3fff, height: le16(28) & 0x3fff };
        }
        if (chunk === 'VP8L' && b[20] === 0x2f) {
          const bits = (b[21] | (b[22] << 8) | (b[23] << 16) | (b[24] << 24)) >>> 0;
          return { width: (bits & 0x3fff) + 1, height: ((bits >>> 14) & 0x3fff) + 1 };
        }
        if (chunk === 'VP8X') {
          return { width: (b[24] | (b[25] << 8) | (b[26] << 16)) + 1, height: (b[27] | (b[28] << 8) | (b[29] << 16)) + 1 };
        }
        return undefined;
      }
      case ImageFormat.Jpeg: {
        // Walk the marker segments to the first SOFn (baseline, progressive, lossless, arithmetic).
        let o = 2;
        while (o + 4 <= b.length) {
          if (b[o] !== 0xff) return undefined;
          const m = b[o + 1];
          if (m === 0xff) {
            o++; // fill byte
            continue;
          }
          if (m === 0xd8 || m === 0x01 || (m >= 0xd0 && m <= 0xd7)) {
            o += 2; // markers without a length
            continue;
          }
          if (m === 0xd9 || m === 0xda) return undefined; // EOI / SOS before any SOF
          const len = be16(o + 2);
          if (m >= 0xc0 && m <= 0xcf && m !== 0xc4 && m !== 0xc8 && m !== 0xcc) {
            return o + 9 <= b.length ? { width: be16(o + 7), height: be16(o + 5) } : undefined;
          }
          o += 2 + len;
        }
        return undefined;
      }
      default:
        return undefined;
    }
  } catch {
    return undefined;
  }
}

/**
 * The built-in PNG decoder as an ImageDecoder. Like the official loader (PIL + `exif_transpose`)
 * it applies an EXIF orientation stored in an eXIf chunk (option `exifOrientation: false` to skip).
 */
export class PngImageDecoder implements ImageDecoder {
  readonly formats = [ImageFormat.Png] as const;
  private readonly alpha: AlphaMode;
  private readonly orient: boolean;
  constructor(opts: { alpha?: AlphaMode; exifOrientation?: boolean } = {}) {
    this.alpha = opts.alpha ?? AlphaMode.Drop;
    this.orient = opts.exifOrientation ?? true;
  }
  async decode(bytes: Uint8Array): Promise<RgbImage> {
    const img = await decodePng(bytes, { alpha: this.alpha });
    return this.orient ? applyExifOrientation(img, readExifOrientation(bytes)) : img;
  }
}

export interface DecodeImageOptions {
  /** Tried in order; the first whose `formats` has the sniffed format decodes. Default: [PngImageDecoder]. */
  decoders?: readonly ImageDecoder[];
  /** Declared MIME type (e.g. from an upload); used only when the magic bytes say nothing. */
  mimeType?: string;
  /** Input pixel limit (default DEFAULT_MAX_INPUT_PIXELS), checked from the header and after decoding. */
  maxPixels?: number;
}

function formatFromMime(mime: string | undefined): ImageFormat {
  if (!mime) return ImageFormat.Unknown;
  const m = mime.toLowerCase().split(';')[0].trim();
  if (m === 'image/jpg' || m === 'image/pjpeg') return ImageFormat.Jpeg;
  for (const [f, v] of Object.entries(IMAGE_MIME)) if (v === m) return f as ImageFormat;
  return ImageFormat.Unknown;
}

/**
 * Decodes an uploaded image to RGB uint8 with the pixel limit enforced before decoding when the
 * header reveals the size.
 *
 * @throws UnsupportedMediaError (with `format`) when no decoder handles the bytes;
 *   ImageTooLargeError above the limit; ImageDecodeError for damaged files.
 * @example const img = await decodeImage(bytes, { decoders: [new PngImageDecoder(), browserDecoder] });
 */
export async function decodeImage(bytes: Uint8Array, opts: DecodeImageOptions = {}): Promise<RgbImage> {
  const decoders = opts.decoders ?? [new PngImageDecoder()];
  const maxPixels = opts.maxPixels ?? DEFAULT_MAX_INPUT_PIXELS;
  let format = sniffImageFormat(bytes);
  if (format === ImageFormat.Unknown) format = formatFromMime(opts.mimeType);
  const decoder = decoders.find((d) => d.formats.includes(format));
  if (!decoder) {
    const have = [...new Set(decoders.flatMap((d) => d.formats))].join(', ') || 'none';
    const what = format === ImageFormat.Unknown ? 'an unrecognised format' : `${format.toUpperCase()}`;
    throw new UnsupportedMediaError(format, `the image is ${what}, which no decoder here handles (supported: ${have})`);
  }
  const size = probeImageSize(bytes, format);
  if (size) assertWithinPixelLimit(size.width, size.height, maxPixels);
  const img = await decoder.decode(bytes, opts.mimeType ?? (format !== ImageFormat.Unknown ? IMAGE_MIME[format] : undefined));
  if (img.data.length !== img.width * img.height * 3) {
    throw new ImageDecodeError(`decoder returned ${img.data.length} bytes for ${img.width}×${img.height} RGB`);
  }
  assertWithinPixelLimit(img.width, img.height, maxPixels);
  return img;
}
