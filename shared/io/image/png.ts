/**
 * PNG decoder (production code: the server accepts PNG uploads). Pure TypeScript, no Node module:
 * zlib goes through `DecompressionStream` (./inflate.ts).
 *
 * Supported: every colour type (gray, RGB, palette, gray+alpha, RGBA), bit depths 1/2/4/8/16,
 * Adam7 interlacing, tRNS. Output is interleaved RGB uint8 like PIL's `image.convert("RGB")`,
 * which the official processor applies: alpha is dropped, gray is replicated, low bit depths
 * are scaled to 0…255, 16-bit samples keep their high byte. (Pillow's own 16-bit *gray* → RGB
 * clips values to 255 instead; here the high byte is kept, which is the meaningful image.)
 * Optionally transparent pixels can be composited over white.
 *
 * Safety: the signature, every chunk CRC, the IHDR fields and the filter bytes are checked; the
 * pixel limit is checked from IHDR **before** anything is inflated, and inflating stops at the
 * size IHDR announces.
 */
import { ImageDecodeError, ImageTooLargeError, UnsupportedMediaError } from './errors.ts';
import { inflateZlib } from './inflate.ts';
import type { RgbImage } from './resize.ts';

export const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a] as const;

/** PNG colour types (IHDR byte 9). */
export enum PngColorType {
  Gray = 0,
  Rgb = 2,
  Palette = 3,
  GrayAlpha = 4,
  Rgba = 6,
}

/** Scanline filter types (first byte of each scanline). */
enum PngFilter {
  None = 0,
  Sub = 1,
  Up = 2,
  Average = 3,
  Paeth = 4,
}

/** What to do with transparency when producing RGB. */
export enum AlphaMode {
  /** Ignore alpha / tRNS, keep the stored colour: PIL `convert("RGB")`, as the official processor. */
  Drop = 'drop',
  /** Blend over an opaque white background. */
  White = 'white',
}

export interface PngHeader {
  width: number;
  height: number;
  bitDepth: number;
  colorType: PngColorType;
  interlaced: boolean;
}

export interface PngDecodeOptions {
  /** Reject images with more pixels than this before inflating (default: no limit here; see decode.ts). */
  maxPixels?: number;
  /** Default AlphaMode.Drop (equal to the official processor). */
  alpha?: AlphaMode;
}

const CHANNELS: Record<PngColorType, number> = {
  [PngColorType.Gray]: 1,
  [PngColorType.Rgb]: 3,
  [PngColorType.Palette]: 1,
  [PngColorType.GrayAlpha]: 2,
  [PngColorType.Rgba]: 4,
};

const ALLOWED_DEPTHS: Record<PngColorType, readonly number[]> = {
  [PngColorType.Gray]: [1, 2, 4, 8, 16],
  [PngColorType.Rgb]: [8, 16],
  [PngColorType.Palette]: [1, 2, 4, 8],
  [PngColorType.GrayAlpha]: [8, 16],
  [PngColorType.Rgba]: [8, 16],
};

let crcTable: Uint32Array | undefined;
function crc32(bytes: Uint8Array, start: number, end: number): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let c = 0xffffffff;
  for (let i = start; i < end; i++) c = crcTable[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function u32(b: Uint8Array, o: number): number {
  return ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;
}

/** True when the bytes start with the PNG signature. */
export function isPng(bytes: Uint8Array): boolean {
  return bytes.length >= 8 && PNG_SIGNATURE.every((v, i) => bytes[i] === v);
}

/**
 * Reads and validates IHDR (no inflating). Useful to check the size of an upload cheaply.
 * @throws ImageDecodeError for a damaged header, UnsupportedMediaError for an invalid combination.
 */
export function readPngHeader(bytes: Uint8Array): PngHeader {
  if (!isPng(bytes)) throw new ImageDecodeError('not a PNG file (bad signature)');
  if (bytes.length < 33) throw new ImageDecodeError('PNG file is truncated before the end of IHDR');
  const len = u32(bytes, 8);
  const type = String.fromCharCode(bytes[12], bytes[13], bytes[14], bytes[15]);
  if (type !== 'IHDR' || len !== 13) throw new ImageDecodeError('PNG file does not start with a valid IHDR chunk');
  if (crc32(bytes, 12, 29) !== u32(bytes, 29)) throw new ImageDecodeError('PNG IHDR chunk has a bad CRC');
  const width = u32(bytes, 16);
  const height = u32(bytes, 20);
  const bitDepth = bytes[24];
  const colorType = bytes[25] as PngColorType;
  const compression = bytes[26];
  const filterMethod = bytes[27];
  const interlace = bytes[28];
  if (width === 0 || height === 0 || width > 0x7fffffff || height > 0x7fffffff) {
    throw new ImageDecodeError(`PNG has invalid dimensions ${width}×${height}`);
  }
  if (!(colorType in ALLOWED_DEPTHS)) throw new ImageDecodeError(`PNG has invalid colour type ${colorType}`);
  if (!ALLOWED_DEPTHS[colorType].includes(bitDepth)) {
    throw new ImageDecodeError(`PNG colour type ${PngColorType[colorType]} cannot have bit depth ${bitDepth}`);
  }
  if (compression !== 0 || filterMethod !== 0) {
    throw new UnsupportedMediaError('png', `PNG compression method ${compression} / filter method ${filterMethod} is not defined by the PNG standard`);
  }
  if (interlace > 1) throw new ImageDecodeError(`PNG has invalid interlace method ${interlace}`);
  return { width, height, bitDepth, colorType, interlaced: interlace === 1 };
}

/** Adam7 passes: [x0, y0, dx, dy]. */
const ADAM7: readonly (readonly [number, number, number, number])[] = [
  [0, 0, 8, 8],
  [4, 0, 8, 8],
  [0, 4, 4, 8],
  [2, 0, 4, 4],
  [0, 2, 2, 4],
  [1, 0, 2, 2],
  [0, 1, 1, 2],
];

interface SubImage {
  w: number;
  h: number;
  x0: number;
  y0: number;
  dx: number;
  dy: number;
}

function subImages(h: PngHeader): SubImage[] {
  if (!h.interlaced) return [{ w: h.width, h: h.height, x0: 0, y0: 0, dx: 1, dy: 1 }];
  const out: SubImage[] = [];
  for (const [x0, y0, dx, dy] of ADAM7) {
    const w = Math.ceil((h.width - x0) / dx);
    const hh = Math.ceil((h.height - y0) / dy);
    if (w > 0 && hh > 0) out.push({ w, h: hh, x0, y0, dx, dy });
  }
  return out;
}

/**
 * Undoes the scanline filters of one (sub)image **in place**: row y (stride bytes + 1 filter byte
 * at offset + y·(stride + 1)) is written to offset + y·stride, which never overtakes a byte still
 * to be read. Returns the unfiltered rows as a view.
 */
function unfilterInPlace(buf: Uint8Array, offset: number, rows: number, stride: number, bpp: number): Uint8Array {
  for (let y = 0; y < rows; y++) {
    const f = buf[offset + y * (stride + 1)] as PngFilter;
    const src = offset + y * (stride + 1) + 1;
    const cur = offset + y * stride;
    const prev = cur - stride; // only read when y > 0
    switch (f) {
      case PngFilter.None:
        buf.copyWithin(cur, src, src + stride);
        break;
      case PngFilter.Sub:
        for (let i = 0; i < stride; i++) buf[cur + i] = buf[src + i] + (i >= bpp ? buf[cur + i - bpp] : 0);
        break;
      case PngFilter.Up:
        for (let i = 0; i < stride; i++) buf[cur + i] = buf[src + i] + (y > 0 ? buf[prev + i] : 0);
        break;
      case PngFilter.Average:
        for (let i = 0; i < stride; i++) {
          const a = i >= bpp ? buf[cur + i - bpp] : 0;
          const b = y > 0 ? buf[prev + i] : 0;
          buf[cur + i] = buf[src + i] + ((a + b) >> 1);
        }
        break;
      case PngFilter.Paeth:
        for (let i = 0; i < stride; i++) {
          const a = i >= bpp ? buf[cur + i - bpp] : 0;
          const b = y > 0 ? buf[prev + i] : 0;
          const c = i >= bpp && y > 0 ? buf[prev + i - bpp] : 0;
          const p = a + b - c;
          const pa = Math.abs(p - a);
          const pb = Math.abs(p - b);
          const pc = Math.abs(p - c);
          buf[cur + i] = buf[src + i] + (pa <= pb && pa <= pc ? a : pb <= pc ? b : c);
        }
        break;
      default:
        throw new ImageDecodeError(`PNG scanline ${y} has invalid filter type ${f}`);
    }
  }
  return buf.subarray(offset, offset + rows * stride);
}

interface Ancillary {
  palette?: Uint8Array; // RGB triples
  trns?: Uint8Array;
}

/**
 * Writes one unfiltered (sub)image into the RGB output. Samples are read at the file's bit depth;
 * `alpha` receives 0…255 per pixel when compositing is wanted.
 */
function expand(
  rows: Uint8Array,
  sub: SubImage,
  hdr: PngHeader,
  anc: Ancillary,
  rgb: Uint8Array,
  alpha: Uint8Array | undefined,
): void {
  const { bitDepth, colorType, width } = hdr;
  const ch = CHANNELS[colorType];
  const stride = Math.ceil((sub.w * ch * bitDepth) / 8);
  if (bitDepth === 8 && (colorType === PngColorType.Rgb || colorType === PngColorType.Rgba) && !alpha && !hdr.interlaced) {
    // Fast path for the common upload: 8-bit RGB(A), whole image, alpha dropped.
    if (ch === 3) {
      rgb.set(rows.subarray(0, sub.w * sub.h * 3));
    } else {
      for (let i = 0, n = sub.w * sub.h; i < n; i++) {
        rgb[3 * i] = rows[4 * i];
        rgb[3 * i + 1] = rows[4 * i + 1];
        rgb[3 * i + 2] = rows[4 * i + 2];
      }
    }
    return;
  }
  const maxV = (1 << Math.min(bitDepth, 8)) - 1;
  const scale = bitDepth < 8 ? 255 / maxV : 1; // 1 → 255, 2 → 85, 4 → 17: exact integers
  // tRNS key colour for gray / RGB, compared at the file's bit depth.
  const key =
    anc.trns && (colorType === PngColorType.Gray || colorType === PngColorType.Rgb)
      ? Array.from({ length: anc.trns.length / 2 }, (_, i) => (anc.trns![2 * i] << 8) | anc.trns![2 * i + 1])
      : undefined;
  const sample = (row: number, idx: number): number => {
    // Full-precision sample idx (0-based within the row).
    if (bitDepth === 8) return rows[row + idx];
    if (bitDepth === 16) return (rows[row + 2 * idx] << 8) | rows[row + 2 * idx + 1];
    const bit = idx * bitDepth;
    return (rows[row + (bit >> 3)] >> (8 - bitDepth - (bit & 7))) & maxV;
  };
  const to8 = (v: number): number => (bitDepth === 16 ? v >> 8 : bitDepth < 8 ? v * scale : v);
  for (let y = 0; y < sub.h; y++) {
    const row = y * stride;
    const oy = sub.y0 + y * sub.dy;
    for (let x = 0; x < sub.w; x++) {
      const o = oy * width + sub.x0 + x * sub.dx;
      let r: number;
      let g: number;
      let b: number;
      let a = 255;
      switch (colorType) {
        case PngColorType.Gray: {
          const v = sample(row, x);
          r = g = b = to8(v);
          if (key && v === key[0]) a = 0;
          break;
        }
        case PngColorType.Rgb: {
          const vr = sample(row, 3 * x);
          const vg = sample(row, 3 * x + 1);
          const vb = sample(row, 3 * x + 2);
          r = to8(vr);
          g = to8(vg);
          b = to8(vb);
          if (key && vr === key[0] && vg === key[1] && vb === key[2]) a = 0;
          break;
        }
        case PngColorType.Palette: {
          const idx = sample(row, x);
          const pal = anc.palette!;
          if (3 * idx + 2 >= pal.length) throw new ImageDecodeError(`PNG palette index ${idx} is outside the ${pal.length / 3}-entry palette`);
          r = pal[3 * idx];
          g = pal[3 * idx + 1];
          b = pal[3 * idx + 2];
          if (anc.trns && idx < anc.trns.length) a = anc.trns[idx];
          break;
        }
        case PngColorType.GrayAlpha:
          r = g = b = to8(sample(row, 2 * x));
          a = to8(sample(row, 2 * x + 1));
          break;
        default:
          r = to8(sample(row, 4 * x));
          g = to8(sample(row, 4 * x + 1));
          b = to8(sample(row, 4 * x + 2));
          a = to8(sample(row, 4 * x + 3));
      }
      rgb[3 * o] = r;
      rgb[3 * o + 1] = g;
      rgb[3 * o + 2] = b;
      if (alpha) alpha[o] = a;
    }
  }
}

/**
 * Decodes a PNG file to interleaved RGB uint8 (alpha dropped by default, like PIL `convert("RGB")`).
 *
 * @throws ImageTooLargeError when width·height > opts.maxPixels (checked before inflating).
 * @throws ImageDecodeError for a damaged file; UnsupportedMediaError for non-standard methods.
 * @example const img = await decodePng(bytes, { maxPixels: 40e6 });
 */
export async function decodePng(bytes: Uint8Array, opts: PngDecodeOptions = {}): Promise<RgbImage> {
  const hdr = readPngHeader(bytes);
  if (opts.maxPixels !== undefined && hdr.width * hdr.height > opts.maxPixels) {
    throw new ImageTooLargeError(hdr.width, hdr.height, opts.maxPixels);
  }
  const anc: Ancillary = {};
  const idat: Uint8Array[] = [];
  let idatLen = 0;
  let pos = 33;
  let sawEnd = false;
  while (pos + 12 <= bytes.length) {
    const len = u32(bytes, pos);
    const type = String.fromCharCode(bytes[pos + 4], bytes[pos + 5], bytes[pos + 6], bytes[pos + 7]);
    const dataStart = pos + 8;
    const dataEnd = dataStart + len;
    if (len > 0x7fffffff || dataEnd + 4 > bytes.length) throw new ImageDecodeError(`PNG chunk ${type} is truncated`);
    if (crc32(bytes, pos + 4, dataEnd) !== u32(bytes, dataEnd)) throw new ImageDecodeError(`PNG chunk ${type} has a bad CRC`);
    const data = bytes.subarray(dataStart, dataEnd);
    if (type === 'IDAT') {
      idat.push(data);
      idatLen += len;
    } else if (type === 'PLTE') {
      if (len % 3 !== 0 || len === 0 || len > 768) throw new ImageDecodeError(`PNG PLTE chunk has invalid length ${len}`);
      anc.palette = data;
    } else if (type === 'tRNS') {
      anc.trns = data;
    } else if (type === 'IEND') {
      sawEnd = true;
      break;
    } else if ((bytes[pos + 4] & 0x20) === 0) {
      throw new UnsupportedMediaError('png', `PNG has an unknown critical chunk ${type}`);
    }
    pos = dataEnd + 4;
  }
  if (idatLen === 0) throw new ImageDecodeError(sawEnd ? 'PNG has no image data (no IDAT chunk)' : 'PNG file is truncated (no IDAT chunk)');
  if (hdr.colorType === PngColorType.Palette && !anc.palette) throw new ImageDecodeError('palette PNG has no PLTE chunk');

  const ch = CHANNELS[hdr.colorType];
  const bitsPerPixel = ch * hdr.bitDepth;
  const bpp = Math.max(1, bitsPerPixel >> 3);
  const subs = subImages(hdr);
  let expected = 0;
  for (const s of subs) expected += s.h * (Math.ceil((s.w * bitsPerPixel) / 8) + 1);

  const compressed = new Uint8Array(idatLen);
  let off = 0;
  for (const c of idat) {
    compressed.set(c, off);
    off += c.length;
  }
  const raw = await inflateZlib(compressed, expected, 'PNG image data');

  const rgb = new Uint8Array(hdr.width * hdr.height * 3);
  const composite = (opts.alpha ?? AlphaMode.Drop) === AlphaMode.White;
  const hasAlpha = hdr.colorType === PngColorType.GrayAlpha || hdr.colorType === PngColorType.Rgba || anc.trns !== undefined;
  const alpha = composite && hasAlpha ? new Uint8Array(hdr.width * hdr.height) : undefined;
  let rawOff = 0;
  for (const s of subs) {
    const stride = Math.ceil((s.w * bitsPerPixel) / 8);
    const rows = unfilterInPlace(raw, rawOff, s.h, stride, bpp);
    expand(rows, s, hdr, anc, rgb, alpha);
    rawOff += s.h * (stride + 1);
  }
  if (alpha) {
    for (let i = 0; i < alpha.length; i++) {
      const a = alpha[i];
      if (a === 255) continue;
      for (let c = 0; c < 3; c++) rgb[3 * i + c] = Math.round((rgb[3 * i + c] * a + 255 * (255 - a)) / 255);
    }
  }
  return { width: hdr.width, height: hdr.height, data: rgb };
}
