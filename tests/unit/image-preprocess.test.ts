/**
 * Resize + normalize + patchify against the official processor outputs (golden data).
 *
 * Tolerances: pixel values with no resize must be bit-exact (the official path is float32
 * (u − 127.5)/127.5, reproduced by a table). With a resize the target is the official uint8
 * resized image; the contract allows 1 uint8 step (1/127.5 = 0.00784 normalized) and the test
 * reports the measured max/mean difference and the share of exact pixels.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ImageTooLargeError, PreprocessArgumentError } from '../../shared/io/image/errors.ts';
import { normalizationTable, patchifyFrames, QWEN3_VL_PATCHIFY } from '../../shared/io/image/patchify.ts';
import { decodePng } from '../../shared/io/image/png.ts';
import {
  preprocessImage,
  preprocessVideo,
  processorConfigFromJson,
  QWEN3_VL_IMAGE_CONFIG,
  QWEN3_VL_VIDEO_CONFIG,
} from '../../shared/io/image/preprocess.ts';
import { bicubicAxisTaps, type RgbImage, resizeBicubic } from '../../shared/io/image/resize.ts';
import { smartResize } from '../../shared/io/image/smart-resize.ts';
import { sampleFrameIndices } from '../../shared/io/image/video.ts';
import { type GoldenCase, type GoldenTensor, rows3, tensor } from '../support/golden.ts';
import { Rng } from '../support/random.ts';

const golden = fileURLToPath(new URL('../fixtures/golden/', import.meta.url));
const e2e = golden + 'e2e/';
const readCase = (p: string) => JSON.parse(readFileSync(golden + p, 'utf8')) as GoldenCase;
const png = async (file: string) => decodePng(new Uint8Array(readFileSync(e2e + file)));
const UINT8_STEP = 1 / 127.5;

/** Max |a − b| with the golden side read as float32 (the JSON holds the shortest decimal of each float32). */
function maxAbsDiff(a: ArrayLike<number>, golden: ArrayLike<number>): number {
  const b = Float32Array.from(golden);
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

function concatF32(parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

const sha256f32 = (x: Float32Array) => createHash('sha256').update(new Uint8Array(x.buffer, x.byteOffset, x.byteLength)).digest('hex');

describe('normalization', () => {
  it('(x − 127.5)/127.5 in float32, bit-exact with the official fused rescale+normalize', () => {
    const [t] = normalizationTable();
    for (let x = 0; x < 256; x++) expect(t[x]).toBe(Math.fround((x - 127.5) / 127.5));
    expect(t[0]).toBe(-1);
    expect(t[255]).toBe(1);
  });
});

describe('patchify against the realvocab cases (no resize)', () => {
  it('case_image: two images, pixel_values [32, 1536] exactly', () => {
    const c = readCase('realvocab/case_image.json');
    const raws = c.raw_images_hwc_uint8 as GoldenTensor[];
    const want = tensor(c, 'pixel_values');
    const grids = rows3(c.image_grid_thw as GoldenTensor);
    const parts: Float32Array[] = [];
    raws.forEach((raw, i) => {
      const [h, w] = raw.shape;
      const r = patchifyFrames([Uint8Array.from(raw.data)], h, w, QWEN3_VL_PATCHIFY);
      expect(r.gridThw).toEqual(grids[i]);
      parts.push(r.pixelValues);
    });
    const got = concatF32(parts);
    expect(got.length).toBe(want.shape[0] * want.shape[1]);
    expect(maxAbsDiff(got, want.data)).toBe(0);
  });

  it('case_video: 4 frames 64×64, pixel_values_videos [32, 1536] exactly', () => {
    const c = readCase('realvocab/case_video.json');
    const raw = tensor(c, 'raw_video_thwc_uint8');
    const [T, H, W] = raw.shape;
    const idx = sampleFrameIndices({ totalFrames: T, videoFps: c.fps as number });
    expect(idx).toEqual(c.frame_indices);
    const frameLen = H * W * 3;
    const frames: RgbImage[] = idx.map((i) => ({ width: W, height: H, data: Uint8Array.from(raw.data.slice(i * frameLen, (i + 1) * frameLen)) }));
    // The case lowered size.shortest_edge so that no resize happens; the published video config gives the same.
    const r = preprocessVideo(frames, QWEN3_VL_VIDEO_CONFIG);
    expect([r.resizedHeight, r.resizedWidth]).toEqual([H, W]);
    expect([r.gridThw]).toEqual(rows3(c.video_grid_thw as GoldenTensor));
    expect(maxAbsDiff(r.pixelValues, tensor(c, 'pixel_values_videos').data)).toBe(0);
  });

  it('odd frame counts are padded by repeating the last frame', () => {
    const rng = new Rng(3);
    const f = () => Uint8Array.from({ length: 32 * 64 * 3 }, () => rng.int(0, 255));
    const [a, b, c] = [f(), f(), f()];
    const three = patchifyFrames([a, b, c], 32, 64);
    const four = patchifyFrames([a, b, c, c], 32, 64);
    expect(three.gridThw).toEqual([2, 2, 4]);
    expect(sha256f32(three.pixelValues)).toBe(sha256f32(four.pixelValues));
    expect(() => patchifyFrames([a], 30, 64)).toThrow(PreprocessArgumentError);
  });
});

describe('preprocessImage against the e2e digests (no resize)', () => {
  it.each(['case_one_image', 'case_two_images_one_turn', 'case_image_earlier_turn'])('%s', async (name) => {
    const c = readCase(`e2e/${name}.json`);
    const imgs = c.images as { file: string }[];
    const parts: Float32Array[] = [];
    const grids: number[][] = [];
    for (const { file } of imgs) {
      const r = preprocessImage(await png(file));
      parts.push(r.pixelValues);
      grids.push(r.gridThw);
    }
    expect(grids).toEqual(rows3(c.image_grid_thw as GoldenTensor));
    const all = concatF32(parts);
    const digest = c.pixel_values_digest as { shape: number[]; sha256_f32le: string };
    expect(all.length).toBe(digest.shape[0] * digest.shape[1]);
    expect(sha256f32(all)).toBe(digest.sha256_f32le);
  });
});

describe('bicubic resize against torchvision (case_image_resized: 200×300 → 224×320)', () => {
  it('our resize equals the official resized PNG (≤ 1 uint8 step; measured)', async () => {
    const src = await png('img_e_200x300.png');
    const want = await png('img_e_200x300.official_resized_224x320.png');
    expect(smartResize(200, 300, { factor: 32, minPixels: 65536, maxPixels: 16777216 })).toEqual([224, 320]);
    const got = resizeBicubic(src, 224, 320);
    let max = 0;
    let sum = 0;
    let exact = 0;
    for (let i = 0; i < got.data.length; i++) {
      const d = Math.abs(got.data[i] - want.data[i]);
      max = Math.max(max, d);
      sum += d;
      if (d === 0) exact++;
    }
    console.info(
      `resize 200x300→224x320 vs official: max ${max} steps, mean ${(sum / got.data.length).toExponential(2)} steps, exact ${((100 * exact) / got.data.length).toFixed(3)} % of values`,
    );
    expect(max).toBeLessThanOrEqual(1);
    expect(exact / got.data.length).toBe(1); // measured: bit-exact; relax to ≥ 0.99 only with a reason
  });

  it('pixel_values: exact from the official resized PNG, and from our resize', async () => {
    const c = readCase('e2e/case_image_resized.json');
    const want = tensor(c, 'pixel_values');
    const fromOfficial = patchifyFrames([(await png('img_e_200x300.official_resized_224x320.png')).data], 224, 320);
    expect(fromOfficial.gridThw).toEqual(rows3(c.image_grid_thw as GoldenTensor)[0]);
    expect(maxAbsDiff(fromOfficial.pixelValues, want.data)).toBe(0);
    const ours = preprocessImage(await png('img_e_200x300.png'));
    expect([ours.resizedHeight, ours.resizedWidth, ours.numTokens]).toEqual([224, 320, 70]);
    expect(maxAbsDiff(ours.pixelValues, want.data)).toBeLessThanOrEqual(UINT8_STEP + 1e-6);
  });
});

describe('bicubic resize properties', () => {
  const rng = new Rng(11);
  const randomImage = (w: number, h: number): RgbImage => ({
    width: w,
    height: h,
    data: Uint8Array.from({ length: w * h * 3 }, () => rng.int(0, 255)),
  });

  it('a constant image stays constant (weights sum to 2^p), up- and downscaling, odd sizes', () => {
    for (const [w, h, W, H] of [
      [37, 23, 64, 96],
      [333, 517, 64, 33],
      [5, 7, 1, 1],
      [1, 1, 9, 3],
    ]) {
      const img: RgbImage = { width: w, height: h, data: new Uint8Array(w * h * 3).fill(173) };
      const out = resizeBicubic(img, H, W);
      expect(out.data.every((v) => v === 173), `${w}x${h}→${W}x${H}`).toBe(true);
    }
  });

  it('same size is a copy; one axis resizes only that axis', () => {
    const img = randomImage(19, 13);
    const same = resizeBicubic(img, 13, 19);
    expect(same.data).toEqual(img.data);
    expect(same.data).not.toBe(img.data);
    const wOnly = resizeBicubic(img, 13, 40);
    const hOnly = resizeBicubic(img, 40, 19);
    expect([wOnly.width, wOnly.height, hOnly.width, hOnly.height]).toEqual([40, 13, 19, 40]);
  });

  it('downscaling widens the filter support by the scale (antialias)', () => {
    const up = bicubicAxisTaps(100, 150);
    expect(Math.max(...up.xsize)).toBe(4);
    const down = bicubicAxisTaps(300, 100); // scale 3 → support 6 → up to 12 taps (13 slots)
    expect(down.ksize).toBe(13);
    expect(Math.max(...down.xsize)).toBe(12);
    // Each output's fixed-point weights sum to 2^p up to rounding.
    for (const t of [up, down]) {
      for (let i = 0; i < t.xmin.length; i++) {
        let s = 0;
        for (let j = 0; j < t.ksize; j++) s += t.weights[i * t.ksize + j];
        expect(Math.abs(s - 2 ** t.precision)).toBeLessThanOrEqual(t.ksize);
      }
    }
  });

  it('downscale 333×517 → 320×512 runs and stays in range', () => {
    const img = randomImage(517, 333);
    const out = resizeBicubic(img, 320, 512);
    expect(out.data.length).toBe(320 * 512 * 3);
  });
});

describe('limits and config', () => {
  it('preprocessImage refuses an input above maxInputPixels before resizing', () => {
    const img: RgbImage = { width: 300, height: 200, data: new Uint8Array(300 * 200 * 3) };
    expect(() => preprocessImage(img, QWEN3_VL_IMAGE_CONFIG, { maxInputPixels: 50_000 })).toThrow(ImageTooLargeError);
    expect(() => preprocessImage(img, QWEN3_VL_IMAGE_CONFIG, { maxInputPixels: 50_000 })).toThrow(
      expect.objectContaining({ code: 'IMAGE_TOO_LARGE', maxPixels: 50_000 }),
    );
  });

  it('reads the published processor configs', () => {
    const img = JSON.parse(readFileSync(e2e + 'processor/preprocessor_config.json', 'utf8'));
    const vid = JSON.parse(readFileSync(e2e + 'processor/video_preprocessor_config.json', 'utf8'));
    expect(processorConfigFromJson(img, QWEN3_VL_IMAGE_CONFIG)).toEqual(QWEN3_VL_IMAGE_CONFIG);
    expect(processorConfigFromJson(vid, QWEN3_VL_VIDEO_CONFIG)).toEqual(QWEN3_VL_VIDEO_CONFIG);
    expect(processorConfigFromJson({ min_pixels: 3136, max_pixels: 12845056 }, QWEN3_VL_IMAGE_CONFIG)).toMatchObject({
      minPixels: 3136,
      maxPixels: 12845056,
    });
  });
});
