/**
 * EXIF orientation: read the Orientation tag (0x0112) from JPEG (APP1), PNG (eXIf) and WebP (EXIF
 * chunk) files, and apply it to a decoded RGB image the way the official loader does
 * (`PIL.ImageOps.exif_transpose`: 2 flip left-right, 3 rotate 180°, 4 flip top-bottom,
 * 5 transpose, 6 rotate 90° clockwise, 7 transverse, 8 rotate 90° counter-clockwise).
 *
 *   input W×H          6 (90° CW) → H×W        8 (90° CCW) → H×W
 *   a b c              d a                     c f
 *   d e f              e b                     b e
 *                      f c                     a d
 */
import type { RgbImage } from './resize.ts';

/** EXIF Orientation values (1 = as stored). */
export enum ExifOrientation {
  Normal = 1,
  FlipHorizontal = 2,
  Rotate180 = 3,
  FlipVertical = 4,
  Transpose = 5,
  Rotate90Cw = 6,
  Transverse = 7,
  Rotate90Ccw = 8,
}

/** Orientation from a TIFF-structured EXIF block (starting at "II*\0" / "MM\0*"); undefined if absent. */
export function orientationFromTiff(b: Uint8Array, start = 0): ExifOrientation | undefined {
  if (start + 8 > b.length) return undefined;
  const le = b[start] === 0x49 && b[start + 1] === 0x49;
  const be = b[start] === 0x4d && b[start + 1] === 0x4d;
  if (!le && !be) return undefined;
  const u16 = (o: number) => (le ? b[start + o] | (b[start + o + 1] << 8) : (b[start + o] << 8) | b[start + o + 1]);
  const u32 = (o: number) => (le ? (u16(o) | (u16(o + 2) << 16)) >>> 0 : ((u16(o) << 16) | u16(o + 2)) >>> 0);
  if (u16(2) !== 42) return undefined;
  const ifd = u32(4);
  if (start + ifd + 2 > b.length) return undefined;
  const n = u16(ifd);
  for (let i = 0; i < n; i++) {
    const e = ifd + 2 + 12 * i;
    if (start + e + 12 > b.length) return undefined;
    if (u16(e) === 0x0112) {
      const v = u16(e + 8); // SHORT, left-justified in the value field
      return v >= 1 && v <= 8 ? (v as ExifOrientation) : undefined;
    }
  }
  return undefined;
}

const EXIF_HEADER = [0x45, 0x78, 0x69, 0x66, 0x00, 0x00]; // "Exif\0\0"

function hasExifHeader(b: Uint8Array, o: number): boolean {
  return EXIF_HEADER.every((v, i) => b[o + i] === v);
}

/** The EXIF orientation stored in a JPEG, PNG or WebP file (undefined when there is none). */
export function readExifOrientation(b: Uint8Array): ExifOrientation | undefined {
  try {
    if (b[0] === 0xff && b[1] === 0xd8) {
      let o = 2;
      while (o + 4 <= b.length && b[o] === 0xff) {
        const m = b[o + 1];
        if (m === 0xd9 || m === 0xda) return undefined; // EOI / SOS: no more metadata
        if (m === 0xff) {
          o++;
          continue;
        }
        const len = (b[o + 2] << 8) | b[o + 3];
        if (m === 0xe1 && hasExifHeader(b, o + 4)) return orientationFromTiff(b.subarray(0, o + 2 + len), o + 10);
        o += 2 + len;
      }
      return undefined;
    }
    if (b[0] === 0x89 && b[1] === 0x50 && b[2] === 0x4e && b[3] === 0x47) {
      let o = 8;
      while (o + 12 <= b.length) {
        const len = ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;
        const type = String.fromCharCode(b[o + 4], b[o + 5], b[o + 6], b[o + 7]);
        if (type === 'eXIf') {
          const d = b.subarray(o + 8, o + 8 + len);
          return orientationFromTiff(d, hasExifHeader(d, 0) ? 6 : 0);
        }
        if (type === 'IEND') return undefined;
        o += 12 + len;
      }
      return undefined;
    }
    if (String.fromCharCode(...b.subarray(0, 4)) === 'RIFF' && String.fromCharCode(...b.subarray(8, 12)) === 'WEBP') {
      let o = 12;
      while (o + 8 <= b.length) {
        const type = String.fromCharCode(...b.subarray(o, o + 4));
        const len = (b[o + 4] | (b[o + 5] << 8) | (b[o + 6] << 16) | (b[o + 7] << 24)) >>> 0;
        if (type === 'EXIF') {
          const d = b.subarray(o + 8, o + 8 + len);
          return orientationFromTiff(d, hasExifHeader(d, 0) ? 6 : 0);
        }
        o += 8 + len + (len & 1);
      }
    }
  } catch {
    // Malformed metadata is ignored, as PIL does for a broken EXIF block.
  }
  return undefined;
}

/**
 * Applies an EXIF orientation to an RGB image (returns the same object for Normal / undefined).
 * Equal to `PIL.ImageOps.exif_transpose` on the pixels.
 */
export function applyExifOrientation(img: RgbImage, orientation: ExifOrientation | undefined): RgbImage {
  if (orientation === undefined || orientation === ExifOrientation.Normal) return img;
  const { width: W, height: H, data } = img;
  const swap = orientation >= ExifOrientation.Transpose;
  const outW = swap ? H : W;
  const outH = swap ? W : H;
  const out = new Uint8Array(data.length);
  // Source pixel (x, y) of output pixel (u, v).
  const src: Record<ExifOrientation, (u: number, v: number) => number> = {
    [ExifOrientation.Normal]: (u, v) => v * W + u,
    [ExifOrientation.FlipHorizontal]: (u, v) => v * W + (W - 1 - u),
    [ExifOrientation.Rotate180]: (u, v) => (H - 1 - v) * W + (W - 1 - u),
    [ExifOrientation.FlipVertical]: (u, v) => (H - 1 - v) * W + u,
    [ExifOrientation.Transpose]: (u, v) => u * W + v,
    [ExifOrientation.Rotate90Cw]: (u, v) => (H - 1 - u) * W + v,
    [ExifOrientation.Transverse]: (u, v) => (H - 1 - u) * W + (W - 1 - v),
    [ExifOrientation.Rotate90Ccw]: (u, v) => u * W + (W - 1 - v),
  };
  const f = src[orientation];
  for (let v = 0; v < outH; v++) {
    for (let u = 0; u < outW; u++) {
      const s = 3 * f(u, v);
      const o = 3 * (v * outW + u);
      out[o] = data[s];
      out[o + 1] = data[s + 1];
      out[o + 2] = data[s + 2];
    }
  }
  return { width: outW, height: outH, data: out };
}
