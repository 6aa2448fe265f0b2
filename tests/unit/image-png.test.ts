/**
 * PNG decoder: the golden PNGs (RGB hashes from the official run), and a test-only encoder
 * (node:zlib) producing every colour type × bit depth × filter × interlace combination on odd sizes.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { deflateSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import {
  decodeImage,
  ImageFormat,
  PngImageDecoder,
  probeImageSize,
  sniffImageFormat,
} from '../../shared/io/image/decode.ts';
import { ImageDecodeError, ImageTooLargeError, UnsupportedMediaError } from '../../shared/io/image/errors.ts';
import { applyExifOrientation, ExifOrientation, readExifOrientation } from '../../shared/io/image/exif.ts';
import { inflateZlib } from '../../shared/io/image/inflate.ts';
import { AlphaMode, decodePng, PngColorType, readPngHeader } from '../../shared/io/image/png.ts';
import { Rng } from '../support/random.ts';

const e2e = fileURLToPath(new URL('../fixtures/golden/e2e/', import.meta.url));

// ---------------------------------------------------------------- test-only PNG encoder
const CH: Record<PngColorType, number> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };

function crc32(b: Uint8Array): number {
  let c = 0xffffffff;
  for (const v of b) {
    c ^= v;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  }
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, data.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(data, 8);
  dv.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

function packRow(samples: ArrayLike<number>, depth: number): Uint8Array {
  const out = new Uint8Array(Math.ceil((samples.length * depth) / 8));
  for (let i = 0; i < samples.length; i++) {
    const v = samples[i];
    if (depth === 16) {
      out[2 * i] = v >> 8;
      out[2 * i + 1] = v & 0xff;
    } else if (depth === 8) out[i] = v;
    else {
      const bit = i * depth;
      out[bit >> 3] |= v << (8 - depth - (bit & 7));
    }
  }
  return out;
}

function filterRow(f: number, row: Uint8Array, prev: Uint8Array | undefined, bpp: number): Uint8Array {
  const out = new Uint8Array(row.length + 1);
  out[0] = f;
  for (let i = 0; i < row.length; i++) {
    const a = i >= bpp ? row[i - bpp] : 0;
    const b = prev ? prev[i] : 0;
    const c = prev && i >= bpp ? prev[i - bpp] : 0;
    let pred = 0;
    if (f === 1) pred = a;
    else if (f === 2) pred = b;
    else if (f === 3) pred = (a + b) >> 1;
    else if (f === 4) {
      const p = a + b - c;
      const pa = Math.abs(p - a);
      const pb = Math.abs(p - b);
      const pc = Math.abs(p - c);
      pred = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
    }
    out[i + 1] = (row[i] - pred) & 0xff;
  }
  return out;
}

interface Spec {
  width: number;
  height: number;
  colorType: PngColorType;
  bitDepth: number;
  samples: number[]; // width·height·channels, at the bit depth
  palette?: Uint8Array;
  trns?: Uint8Array;
  interlace?: boolean;
  filter?: (y: number) => number;
}

const ADAM7 = [
  [0, 0, 8, 8],
  [4, 0, 8, 8],
  [0, 4, 4, 8],
  [2, 0, 4, 4],
  [0, 2, 2, 4],
  [1, 0, 2, 2],
  [0, 1, 1, 2],
];

function encodePng(s: Spec): Uint8Array {
  const ch = CH[s.colorType];
  const bpp = Math.max(1, (ch * s.bitDepth) >> 3);
  const passes = s.interlace ? ADAM7 : [[0, 0, 1, 1]];
  const raw: Uint8Array[] = [];
  let rowCount = 0;
  for (const [x0, y0, dx, dy] of passes) {
    let prev: Uint8Array | undefined;
    for (let y = y0; y < s.height; y += dy) {
      const smp: number[] = [];
      for (let x = x0; x < s.width; x += dx) for (let c = 0; c < ch; c++) smp.push(s.samples[(y * s.width + x) * ch + c]);
      if (smp.length === 0) continue;
      const row = packRow(smp, s.bitDepth);
      raw.push(filterRow(s.filter ? s.filter(rowCount++) : rowCount++ % 5, row, prev, bpp));
      prev = row;
    }
  }
  const ihdr = new Uint8Array(13);
  const dv = new DataView(ihdr.buffer);
  dv.setUint32(0, s.width);
  dv.setUint32(4, s.height);
  ihdr.set([s.bitDepth, s.colorType, 0, 0, s.interlace ? 1 : 0], 8);
  const z = new Uint8Array(deflateSync(concat(raw)));
  const half = z.length >> 1; // two IDAT chunks, to test concatenation
  return concat([
    new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('tEXt', new TextEncoder().encode('Comment\0test')),
    ...(s.palette ? [chunk('PLTE', s.palette)] : []),
    ...(s.trns ? [chunk('tRNS', s.trns)] : []),
    chunk('IDAT', z.subarray(0, half)),
    chunk('IDAT', z.subarray(half)),
    chunk('IEND', new Uint8Array(0)),
  ]);
}

/** Expected RGB of a spec, written independently of the decoder (alpha dropped). */
function expectedRgb(s: Spec): Uint8Array {
  const ch = CH[s.colorType];
  const n = s.width * s.height;
  const out = new Uint8Array(3 * n);
  const to8 = (v: number) => (s.bitDepth === 16 ? v >> 8 : s.bitDepth < 8 ? Math.round((v * 255) / (2 ** s.bitDepth - 1)) : v);
  for (let i = 0; i < n; i++) {
    const px = s.samples.slice(i * ch, i * ch + ch);
    let rgb: number[];
    if (s.colorType === PngColorType.Palette) rgb = Array.from(s.palette!.subarray(3 * px[0], 3 * px[0] + 3));
    else if (ch <= 2) rgb = [to8(px[0]), to8(px[0]), to8(px[0])];
    else rgb = [to8(px[0]), to8(px[1]), to8(px[2])];
    out.set(rgb, 3 * i);
  }
  return out;
}

const DEPTHS: [PngColorType, number[]][] = [
  [PngColorType.Gray, [1, 2, 4, 8, 16]],
  [PngColorType.Rgb, [8, 16]],
  [PngColorType.Palette, [1, 2, 4, 8]],
  [PngColorType.GrayAlpha, [8, 16]],
  [PngColorType.Rgba, [8, 16]],
];

function randomSpec(rng: Rng, colorType: PngColorType, bitDepth: number, width: number, height: number, interlace: boolean): Spec {
  const ch = CH[colorType];
  const palEntries = colorType === PngColorType.Palette ? Math.min(2 ** bitDepth, 200) : 0;
  const max = colorType === PngColorType.Palette ? palEntries - 1 : 2 ** bitDepth - 1;
  const samples = Array.from({ length: width * height * ch }, () => Math.floor(rng.next() * (max + 1)));
  const palette = palEntries ? Uint8Array.from({ length: 3 * palEntries }, () => Math.floor(rng.next() * 256)) : undefined;
  return { width, height, colorType, bitDepth, samples, palette, interlace };
}

// ---------------------------------------------------------------- tests
describe('decodePng on the golden PNGs', () => {
  const cases = ['case_one_image', 'case_two_images_one_turn', 'case_image_earlier_turn', 'case_image_resized'];
  const images = cases.flatMap(
    (c) => JSON.parse(readFileSync(`${e2e}${c}.json`, 'utf8')).images as { file: string; height: number; width: number; rgb_uint8_sha256: string }[],
  );
  it.each(images.map((i) => [i.file, i] as const))('%s: RGB bytes hash to the official value', async (_, img) => {
    const bytes = new Uint8Array(readFileSync(e2e + img.file));
    const rgb = await decodePng(bytes);
    expect([rgb.height, rgb.width]).toEqual([img.height, img.width]);
    expect(createHash('sha256').update(rgb.data).digest('hex')).toBe(img.rgb_uint8_sha256);
  });
});

describe('decodePng on every colour type, bit depth, filter and interlacing', () => {
  const rng = new Rng(20250);
  const combos: [string, Spec][] = [];
  for (const [ct, depths] of DEPTHS) {
    for (const d of depths) {
      for (const interlace of [false, true]) {
        for (const [w, h] of [
          [13, 7],
          [1, 1],
          [9, 17],
        ]) {
          combos.push([`${PngColorType[ct]} ${d}-bit ${interlace ? 'Adam7' : 'plain'} ${w}x${h}`, randomSpec(rng, ct, d, w, h, interlace)]);
        }
      }
    }
  }
  it.each(combos)('%s', async (_, spec) => {
    const got = await decodePng(encodePng(spec));
    expect([got.width, got.height]).toEqual([spec.width, spec.height]);
    expect(Buffer.from(got.data).equals(Buffer.from(expectedRgb(spec)))).toBe(true);
  });

  it('each of the five filters alone', async () => {
    for (let f = 0; f < 5; f++) {
      const spec = { ...randomSpec(rng, PngColorType.Rgba, 8, 11, 6, false), filter: () => f };
      const got = await decodePng(encodePng(spec));
      expect(Buffer.from(got.data).equals(Buffer.from(expectedRgb(spec))), `filter ${f}`).toBe(true);
    }
  });

  it('AlphaMode.White composites RGBA, gray+alpha and palette tRNS over white', async () => {
    const rgba: Spec = { width: 3, height: 1, colorType: PngColorType.Rgba, bitDepth: 8, samples: [10, 20, 30, 0, 10, 20, 30, 255, 0, 0, 0, 128] };
    const a = await decodePng(encodePng(rgba), { alpha: AlphaMode.White });
    expect(Array.from(a.data)).toEqual([255, 255, 255, 10, 20, 30, 127, 127, 127]);
    const d = await decodePng(encodePng(rgba));
    expect(Array.from(d.data)).toEqual([10, 20, 30, 10, 20, 30, 0, 0, 0]); // dropped, like PIL convert("RGB")
    const pal: Spec = {
      width: 2,
      height: 1,
      colorType: PngColorType.Palette,
      bitDepth: 8,
      samples: [0, 1],
      palette: new Uint8Array([1, 2, 3, 4, 5, 6]),
      trns: new Uint8Array([0]),
    };
    expect(Array.from((await decodePng(encodePng(pal), { alpha: AlphaMode.White })).data)).toEqual([255, 255, 255, 4, 5, 6]);
    const gray: Spec = { width: 2, height: 1, colorType: PngColorType.Gray, bitDepth: 8, samples: [7, 8], trns: new Uint8Array([0, 7]) };
    expect(Array.from((await decodePng(encodePng(gray), { alpha: AlphaMode.White })).data)).toEqual([255, 255, 255, 8, 8, 8]);
  });
});

describe('decodePng errors', () => {
  const rng = new Rng(7);
  const good = encodePng(randomSpec(rng, PngColorType.Rgb, 8, 8, 8, false));

  it('rejects a too-large image from IHDR, before inflating anything', async () => {
    // IHDR says 100000×100000; the IDAT is garbage — the size check must fire first.
    const ihdr = new Uint8Array(13);
    new DataView(ihdr.buffer).setUint32(0, 100000);
    new DataView(ihdr.buffer).setUint32(4, 100000);
    ihdr.set([8, 2, 0, 0, 0], 8);
    const bomb = concat([good.subarray(0, 8), chunk('IHDR', ihdr), chunk('IDAT', new Uint8Array([1, 2, 3])), chunk('IEND', new Uint8Array())]);
    await expect(decodePng(bomb, { maxPixels: 40_000_000 })).rejects.toBeInstanceOf(ImageTooLargeError);
    await expect(decodeImage(bomb)).rejects.toMatchObject({ code: 'IMAGE_TOO_LARGE', width: 100000, height: 100000 });
    expect(readPngHeader(bomb)).toMatchObject({ width: 100000, height: 100000, bitDepth: 8, colorType: PngColorType.Rgb });
  });

  it('bad signature, bad CRC, truncated data, bad filter byte, missing palette', async () => {
    const sig = good.slice();
    sig[1] = 0;
    await expect(decodePng(sig)).rejects.toBeInstanceOf(ImageDecodeError);
    const crc = good.slice();
    crc[40] ^= 0xff; // inside the tEXt / IDAT data → that chunk's CRC fails
    await expect(decodePng(crc)).rejects.toThrow(/bad CRC/);
    await expect(decodePng(good.subarray(0, good.length - 40))).rejects.toBeInstanceOf(ImageDecodeError);
    // A valid zlib stream of rows whose filter byte is 9.
    const ihdr = new Uint8Array(13);
    new DataView(ihdr.buffer).setUint32(0, 2);
    new DataView(ihdr.buffer).setUint32(4, 1);
    ihdr.set([8, 0, 0, 0, 0], 8);
    const badFilter = concat([
      good.subarray(0, 8),
      chunk('IHDR', ihdr),
      chunk('IDAT', new Uint8Array(deflateSync(new Uint8Array([9, 1, 2])))),
      chunk('IEND', new Uint8Array()),
    ]);
    await expect(decodePng(badFilter)).rejects.toThrow(/filter type 9/);
    // Too little image data (one row of two announced).
    new DataView(ihdr.buffer).setUint32(4, 2);
    const short = concat([
      good.subarray(0, 8),
      chunk('IHDR', ihdr),
      chunk('IDAT', new Uint8Array(deflateSync(new Uint8Array([0, 1, 2])))),
      chunk('IEND', new Uint8Array()),
    ]);
    await expect(decodePng(short)).rejects.toThrow(/truncated/);
    ihdr.set([8, 3], 8);
    const noPlte = concat([good.subarray(0, 8), chunk('IHDR', ihdr), chunk('IDAT', new Uint8Array(deflateSync(new Uint8Array(6)))), chunk('IEND', new Uint8Array())]);
    await expect(decodePng(noPlte)).rejects.toThrow(/PLTE/);
  });

  it('invalid IHDR combinations are typed errors', () => {
    const ihdr = new Uint8Array(13);
    new DataView(ihdr.buffer).setUint32(0, 4);
    new DataView(ihdr.buffer).setUint32(4, 4);
    ihdr.set([4, 2, 0, 0, 0], 8); // RGB cannot be 4-bit
    expect(() => readPngHeader(concat([good.subarray(0, 8), chunk('IHDR', ihdr)]))).toThrow(ImageDecodeError);
    ihdr.set([8, 2, 1, 0, 0], 8); // compression method 1
    expect(() => readPngHeader(concat([good.subarray(0, 8), chunk('IHDR', ihdr)]))).toThrow(UnsupportedMediaError);
  });
});

describe('inflateZlib', () => {
  const data = Uint8Array.from({ length: 5000 }, (_, i) => (i * 7) & 0xff);
  const z = new Uint8Array(deflateSync(data));

  it('inflates exactly, stops at the expected size, rejects short and corrupt streams', async () => {
    expect(Buffer.from(await inflateZlib(z, 5000)).equals(Buffer.from(data))).toBe(true);
    expect(Buffer.from(await inflateZlib(z, 100)).equals(Buffer.from(data.subarray(0, 100)))).toBe(true);
    await expect(inflateZlib(z, 5001)).rejects.toThrow(/truncated/);
    const bad = z.slice();
    bad[0] = 0x00; // invalid zlib header
    await expect(inflateZlib(bad, 5000)).rejects.toBeInstanceOf(ImageDecodeError);
    await expect(inflateZlib(z.subarray(0, z.length >> 1), 5000)).rejects.toBeInstanceOf(ImageDecodeError);
  });
});

describe('format sniffing and decodeImage', () => {
  const jpeg = new Uint8Array([
    0xff, 0xd8, 0xff, 0xe0, 0x00, 0x04, 0x4a, 0x46, // SOI, APP0 (len 4)
    0xff, 0xc0, 0x00, 0x11, 0x08, 0x01, 0x2c, 0x02, 0x58, 0x03, // SOF0: 8-bit, h 300, w 600, 3 comps
  ]);
  const webpLossy = new Uint8Array(30);
  webpLossy.set(new TextEncoder().encode('RIFF\0\0\0\0WEBPVP8 '), 0);
  webpLossy.set([0, 0, 0, 0, 0, 0, 0, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01], 16); // 640 × 480
  const gif = new Uint8Array([...new TextEncoder().encode('GIF89a'), 0x40, 0x01, 0xf0, 0x00]);

  it('sniffs formats from magic bytes and reads header sizes', () => {
    expect(sniffImageFormat(new Uint8Array(readFileSync(e2e + 'img_a_256x320.png')))).toBe(ImageFormat.Png);
    expect(sniffImageFormat(jpeg)).toBe(ImageFormat.Jpeg);
    expect(probeImageSize(jpeg)).toEqual({ width: 600, height: 300 });
    expect(sniffImageFormat(webpLossy)).toBe(ImageFormat.Webp);
    expect(probeImageSize(webpLossy)).toEqual({ width: 640, height: 480 });
    expect(sniffImageFormat(gif)).toBe(ImageFormat.Gif);
    expect(probeImageSize(gif)).toEqual({ width: 320, height: 240 });
    const avif = new Uint8Array([0, 0, 0, 0x18, ...new TextEncoder().encode('ftypavif\0\0\0\0mif1avif')]);
    expect(sniffImageFormat(avif)).toBe(ImageFormat.Avif);
    expect(sniffImageFormat(new TextEncoder().encode('hello world'))).toBe(ImageFormat.Unknown);
  });

  it('UnsupportedMediaError names the detected format when no decoder handles it', async () => {
    await expect(decodeImage(jpeg)).rejects.toBeInstanceOf(UnsupportedMediaError);
    await expect(decodeImage(jpeg)).rejects.toMatchObject({ code: 'UNSUPPORTED_MEDIA', format: 'jpeg' });
    await expect(decodeImage(webpLossy)).rejects.toThrow(/WEBP.*supported: png/);
    await expect(decodeImage(new TextEncoder().encode('not an image'))).rejects.toMatchObject({ format: 'unknown' });
  });

  it('checks the pixel limit from a JPEG header before calling a decoder', async () => {
    let called = false;
    const fake = {
      formats: [ImageFormat.Jpeg],
      decode: async () => {
        called = true;
        return { width: 600, height: 300, data: new Uint8Array(600 * 300 * 3) };
      },
    };
    await expect(decodeImage(jpeg, { decoders: [fake], maxPixels: 1000 })).rejects.toBeInstanceOf(ImageTooLargeError);
    expect(called).toBe(false);
    const img = await decodeImage(jpeg, { decoders: [fake] });
    expect(called).toBe(true);
    expect(img.width).toBe(600);
  });

  it('decodes a PNG through the default decoder list', async () => {
    const bytes = new Uint8Array(readFileSync(e2e + 'img_b_256x256.png'));
    const img = await decodeImage(bytes, { decoders: [new PngImageDecoder()] });
    expect([img.width, img.height]).toEqual([256, 256]);
  });
});

describe('EXIF orientation', () => {
  // 3×2 image, pixel values a..f = 1..6 (each pixel's R = G = B).
  const img = { width: 3, height: 2, data: Uint8Array.from([1, 2, 3, 4, 5, 6].flatMap((v) => [v, v, v])) };
  const px = (i: { data: Uint8Array }) => Array.from(i.data.filter((_, k) => k % 3 === 0));

  it('maps pixels like PIL exif_transpose', () => {
    const cases: [ExifOrientation, number, number, number[]][] = [
      [ExifOrientation.Normal, 3, 2, [1, 2, 3, 4, 5, 6]],
      [ExifOrientation.FlipHorizontal, 3, 2, [3, 2, 1, 6, 5, 4]],
      [ExifOrientation.Rotate180, 3, 2, [6, 5, 4, 3, 2, 1]],
      [ExifOrientation.FlipVertical, 3, 2, [4, 5, 6, 1, 2, 3]],
      [ExifOrientation.Transpose, 2, 3, [1, 4, 2, 5, 3, 6]],
      [ExifOrientation.Rotate90Cw, 2, 3, [4, 1, 5, 2, 6, 3]],
      [ExifOrientation.Transverse, 2, 3, [6, 3, 5, 2, 4, 1]],
      [ExifOrientation.Rotate90Ccw, 2, 3, [3, 6, 2, 5, 1, 4]],
    ];
    for (const [o, w, h, want] of cases) {
      const r = applyExifOrientation(img, o);
      expect([r.width, r.height, ...px(r)], ExifOrientation[o]).toEqual([w, h, ...want]);
    }
  });

  /** TIFF block with IFD0 = { 0x010f Make, 0x0112 Orientation }. */
  function tiff(orientation: number, le: boolean): Uint8Array {
    const b = new Uint8Array(8 + 2 + 24 + 4);
    const dv = new DataView(b.buffer);
    b.set(le ? [0x49, 0x49] : [0x4d, 0x4d], 0);
    dv.setUint16(2, 42, le);
    dv.setUint32(4, 8, le);
    dv.setUint16(8, 2, le);
    dv.setUint16(10, 0x010f, le);
    dv.setUint16(12, 2, le);
    dv.setUint32(14, 4, le);
    dv.setUint16(22, 0x0112, le);
    dv.setUint16(24, 3, le);
    dv.setUint32(26, 1, le);
    dv.setUint16(30, orientation, le);
    return b;
  }
  const exifHeader = new TextEncoder().encode('Exif\0\0');

  it('reads the tag from JPEG APP1 (both byte orders), PNG eXIf and WebP EXIF', async () => {
    for (const le of [true, false]) {
      const payload = concat([exifHeader, tiff(6, le)]);
      const app1 = concat([new Uint8Array([0xff, 0xe1, 0, payload.length + 2]), payload]);
      const jpeg = concat([new Uint8Array([0xff, 0xd8, 0xff, 0xe0, 0, 4, 0, 0]), app1, new Uint8Array([0xff, 0xda, 0, 2])]);
      expect(readExifOrientation(jpeg)).toBe(ExifOrientation.Rotate90Cw);
    }
    const t = tiff(8, false);
    const riffLen = 4 + 8 + t.length;
    const webp = concat([
      new TextEncoder().encode('RIFF'),
      new Uint8Array([riffLen & 0xff, riffLen >> 8, 0, 0]),
      new TextEncoder().encode('WEBPEXIF'),
      new Uint8Array([t.length, 0, 0, 0]),
      t,
    ]);
    expect(readExifOrientation(webp)).toBe(ExifOrientation.Rotate90Ccw);

    // A PNG with an eXIf chunk: PngImageDecoder rotates like the official loader.
    const spec: Spec = { width: 3, height: 2, colorType: PngColorType.Gray, bitDepth: 8, samples: [1, 2, 3, 4, 5, 6] };
    const plain = encodePng(spec);
    const withExif = concat([plain.subarray(0, 33), chunk('eXIf', tiff(6, true)), plain.subarray(33)]);
    expect(readExifOrientation(withExif)).toBe(ExifOrientation.Rotate90Cw);
    expect(readExifOrientation(plain)).toBeUndefined();
    const rotated = await new PngImageDecoder().decode(withExif);
    expect([rotated.width, rotated.height, ...px(rotated)]).toEqual([2, 3, 4, 1, 5, 2, 6, 3]);
    const asStored = await new PngImageDecoder({ exifOrientation: false }).decode(withExif);
    expect([asStored.width, asStored.height]).toEqual([3, 2]);
  });

  it('ignores broken or missing EXIF', () => {
    expect(readExifOrientation(new Uint8Array([0xff, 0xd8, 0xff, 0xe1, 0, 8, 0x45, 0x78, 0x69, 0x66, 0, 0, 0x49]))).toBeUndefined();
    expect(readExifOrientation(new Uint8Array(4))).toBeUndefined();
  });
});
