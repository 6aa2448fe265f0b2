import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import encodeJpeg, { init as initJpegEnc } from '@jsquash/jpeg/encode.js';
import encodeWebp, { init as initWebpEnc } from '@jsquash/webp/encode.js';
import { beforeAll, describe, expect, it } from 'vitest';
import { JpegImageDecoder, nodeImageDecoders, WebpImageDecoder } from '../../edge-node/io/image-decoders.ts';
import { decodeImage } from '../../shared/io/image/decode.ts';
import { UnsupportedMediaError } from '../../shared/io/image/errors.ts';
import type { RgbImage } from '../../shared/io/image/resize.ts';

const require = createRequire(import.meta.url);

/** Smooth synthetic image (lossy codecs keep smooth gradients within a few levels). */
function gradient(width: number, height: number): RgbImage {
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const o = 3 * (y * width + x);
      data[o] = Math.round((255 * x) / (width - 1));
      data[o + 1] = Math.round((255 * y) / (height - 1));
      data[o + 2] = 128;
    }
  }
  return { width, height, data };
}

function rgba(img: RgbImage): ImageData {
  const d = new Uint8ClampedArray(img.width * img.height * 4);
  for (let i = 0; i < img.width * img.height; i++) {
    d[4 * i] = img.data[3 * i];
    d[4 * i + 1] = img.data[3 * i + 1];
    d[4 * i + 2] = img.data[3 * i + 2];
    d[4 * i + 3] = 255;
  }
  return { data: d, width: img.width, height: img.height, colorSpace: 'srgb' } as ImageData;
}

async function compile(spec: string): Promise<WebAssembly.Module> {
  return WebAssembly.compile(await readFile(require.resolve(spec)));
}

/** Mean absolute difference over all channels. */
function meanAbsDiff(a: Uint8Array, b: Uint8Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += Math.abs(a[i] - b[i]);
  return s / a.length;
}

/** A JPEG APP1 segment holding a big-endian EXIF block with only the Orientation tag. */
function exifApp1(orientation: number): Uint8Array {
  const tiff = [
    0x4d, 0x4d, 0x00, 0x2a, 0x00, 0x00, 0x00, 0x08, // "MM", 42, IFD0 at 8
    0x00, 0x01, // 1 entry
    0x01, 0x12, 0x00, 0x03, 0x00, 0x00, 0x00, 0x01, 0x00, orientation, 0x00, 0x00, // Orientation SHORT ×1
    0x00, 0x00, 0x00, 0x00, // no next IFD
  ];
  const payload = [0x45, 0x78, 0x69, 0x66, 0x00, 0x00, ...tiff]; // "Exif\0\0"
  const len = payload.length + 2;
  return new Uint8Array([0xff, 0xe1, len >> 8, len & 0xff, ...payload]);
}

/** Inserts an APP1 segment right after SOI. */
function spliceAfterSoi(jpeg: Uint8Array, segment: Uint8Array): Uint8Array {
  const out = new Uint8Array(jpeg.length + segment.length);
  out.set(jpeg.subarray(0, 2));
  out.set(segment, 2);
  out.set(jpeg.subarray(2), 2 + segment.length);
  return out;
}

describe('Node JPEG / WebP decoders', () => {
  const W = 37;
  const H = 23;
  const src = gradient(W, H);
  let jpeg: Uint8Array;
  let webp: Uint8Array;

  beforeAll(async () => {
    await initJpegEnc(await compile('@jsquash/jpeg/codec/enc/mozjpeg_enc.wasm'));
    await initWebpEnc(await compile('@jsquash/webp/codec/enc/webp_enc_simd.wasm' /* Node has WASM SIMD, so the encoder picks its SIMD build */));
    jpeg = new Uint8Array(await encodeJpeg(rgba(src), { quality: 95, chroma_subsample: 0 }));
    webp = new Uint8Array(await encodeWebp(rgba(src), { quality: 95 }));
  });

  it('decodes a JPEG to RGB of the right size, pixels within a few levels', async () => {
    const img = await decodeImage(jpeg, { decoders: nodeImageDecoders() });
    expect([img.width, img.height]).toEqual([W, H]);
    expect(img.data.length).toBe(W * H * 3);
    expect(meanAbsDiff(img.data, src.data)).toBeLessThan(2);
  });

  it('decodes a WebP to RGB of the right size, pixels within a few levels', async () => {
    const img = await decodeImage(webp, { decoders: nodeImageDecoders() });
    expect([img.width, img.height]).toEqual([W, H]);
    expect(meanAbsDiff(img.data, src.data)).toBeLessThan(3);
  });

  it('applies EXIF orientation 6 (90° clockwise) to a JPEG', async () => {
    const plain = await new JpegImageDecoder().decode(jpeg);
    const rotated = await decodeImage(spliceAfterSoi(jpeg, exifApp1(6)), { decoders: nodeImageDecoders() });
    expect([rotated.width, rotated.height]).toEqual([H, W]);
    // Output (u, v) comes from stored (x = v, y = H − 1 − u).
    for (const [u, v] of [
      [0, 0],
      [H - 1, 0],
      [5, 17],
      [H - 1, W - 1],
    ]) {
      const o = 3 * (v * H + u);
      const s = 3 * ((H - 1 - u) * W + v);
      expect([...rotated.data.subarray(o, o + 3)]).toEqual([...plain.data.subarray(s, s + 3)]);
    }
  });

  it('reports damaged JPEG / WebP data as a decode error', async () => {
    await expect(new WebpImageDecoder().decode(webp.subarray(0, 40))).rejects.toMatchObject({ code: 'IMAGE_DECODE' });
  });

  it('rejects GIF with UnsupportedMediaError', async () => {
    const gif = new Uint8Array([0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 1, 0, 1, 0, 0, 0, 0, 0x3b]);
    const err = await decodeImage(gif, { decoders: nodeImageDecoders() }).catch((e) => e);
    expect(err).toBeInstanceOf(UnsupportedMediaError);
    expect(err.format).toBe('gif');
  });
});
