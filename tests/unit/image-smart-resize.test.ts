import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { AspectRatioError, ImageTooSmallError } from '../../shared/io/image/errors.ts';
import { formatFixed, roundHalfEven } from '../../shared/io/image/pyround.ts';
import { smartResize, smartResizeVideo } from '../../shared/io/image/smart-resize.ts';
import {
  formatTimestamp,
  linspace,
  sampleFrameIndices,
  temporalPatchTimestamps,
} from '../../shared/io/image/video.ts';

const root = fileURLToPath(new URL('../fixtures/golden/', import.meta.url));
const pre = JSON.parse(readFileSync(root + 'preprocess.json', 'utf8'));

interface ImageRow {
  h: number;
  w: number;
  resized_h: number;
  resized_w: number;
  grid_thw: number[];
  llm_tokens: number;
}
interface VideoRow {
  num_frames: number;
  h: number;
  w: number;
  min_pixels: number;
  max_pixels: number;
  resized_h: number;
  resized_w: number;
}
interface TimestampRow {
  frame_indices: number[];
  fps: number;
  timestamps: number[];
  strings: string[];
}

const IMAGE = { factor: 32, minPixels: 65536, maxPixels: 16777216 };

describe('smartResize (image) against the official table', () => {
  const rows = pre.image_smart_resize_factor32_min65536_max16777216 as ImageRow[];
  it.each(rows.map((r) => [`${r.h}x${r.w}`, r] as const))('%s', (_, r) => {
    const [h, w] = smartResize(r.h, r.w, IMAGE);
    expect([h, w]).toEqual([r.resized_h, r.resized_w]);
    expect([1, h / 16, w / 16]).toEqual(r.grid_thw);
    expect((h * w) / 1024).toBe(r.llm_tokens);
  });

  it('rounds halves to even like Python round(): 528/32 = 16.5 → 512', () => {
    expect(smartResize(528, 720, IMAGE)).toEqual([512, 704]);
    expect(smartResize(592, 784, IMAGE)).toEqual([576, 768]); // 18.5 → 18, 24.5 → 24
  });

  it('refuses an aspect ratio above 200 with a typed error', () => {
    expect(() => smartResize(10, 2001, IMAGE)).toThrow(AspectRatioError);
    expect(() => smartResize(10, 2001, IMAGE)).toThrow(expect.objectContaining({ code: 'ASPECT_RATIO_TOO_LARGE' }));
    expect(smartResize(10, 2000, IMAGE)).toEqual([32, 3648]); // exactly 200 is allowed
  });
});

describe('smartResizeVideo against the official table', () => {
  const rows = pre.video_smart_resize as VideoRow[];
  it.each(rows.map((r) => [`${r.num_frames}f ${r.h}x${r.w} [${r.min_pixels}, ${r.max_pixels}]`, r] as const))('%s', (_, r) => {
    const got = smartResizeVideo(r.num_frames, r.h, r.w, {
      temporalPatch: 2,
      factor: 32,
      minPixels: r.min_pixels,
      maxPixels: r.max_pixels,
    });
    expect(got).toEqual([r.resized_h, r.resized_w]);
  });

  it('requires frames of at least factor×factor and ≥ temporalPatch frames', () => {
    const o = { temporalPatch: 2, factor: 32, minPixels: 4096, maxPixels: 25165824 };
    expect(() => smartResizeVideo(4, 31, 64, o)).toThrow(ImageTooSmallError);
    expect(() => smartResizeVideo(1, 64, 64, o)).toThrow(ImageTooSmallError);
    expect(() => smartResizeVideo(4, 32, 6401, o)).toThrow(AspectRatioError);
  });
});

describe('Python rounding helpers', () => {
  it('roundHalfEven', () => {
    expect([0.5, 1.5, 2.5, -0.5, -1.5, 2.4999999999999996, 16.5, 17.5].map(roundHalfEven)).toEqual([0, 2, 2, 0, -2, 2, 16, 18]);
  });

  it('formatFixed matches Python "{:.Nf}" (exact ties to even, non-exact by the true binary value)', () => {
    // Expected strings are what CPython prints.
    const cases: [number, number, string][] = [
      [0.25, 1, '0.2'],
      [1.25, 1, '1.2'],
      [2.25, 1, '2.2'],
      [0.75, 1, '0.8'],
      [4.0, 1, '4.0'],
      [0.35, 1, '0.3'], // 0.34999999999999997…
      [0.45, 1, '0.5'], // 0.45000000000000001…
      [0.125, 2, '0.12'],
      [0.375, 2, '0.38'],
      [2.5, 0, '2'],
      [3.5, 0, '4'],
      [-0.25, 1, '-0.2'],
      [-0.5, 0, '-0'],
      [123456.75, 1, '123456.8'],
    ];
    for (const [x, d, s] of cases) expect(formatFixed(x, d), `${x}:.${d}f`).toBe(s);
  });
});

describe('video frame sampling and timestamps', () => {
  it.each((pre.video_timestamps as TimestampRow[]).map((r) => [r.frame_indices.join(','), r] as const))(
    'indices %s',
    (_, r) => {
      const ts = temporalPatchTimestamps(r.frame_indices, r.fps, 2);
      expect(ts).toEqual(r.timestamps);
      expect(ts.map(formatTimestamp)).toEqual(r.strings);
    },
  );

  it('case_video: 4 frames at fps 2', () => {
    const c = JSON.parse(readFileSync(root + 'realvocab/case_video.json', 'utf8'));
    expect(sampleFrameIndices({ totalFrames: 4, videoFps: c.fps })).toEqual(c.frame_indices);
    const ts = temporalPatchTimestamps(c.frame_indices, c.fps);
    expect(ts).toEqual(c.timestamps_seconds);
    expect(ts.map(formatTimestamp)).toEqual(c.timestamp_strings);
  });

  it('samples like Qwen3VLVideoProcessor.sample_frames', () => {
    // 10 s at 30 fps, 2 fps wanted → 20 frames over 0…299 (NumPy linspace(0, 299, 20).round()).
    expect(sampleFrameIndices({ totalFrames: 300, videoFps: 30 })).toEqual([
      0, 16, 31, 47, 63, 79, 94, 110, 126, 142, 157, 173, 189, 205, 220, 236, 252, 268, 283, 299,
    ]);
    // Short clip: min_frames 4 wins; then total frames caps it.
    expect(sampleFrameIndices({ totalFrames: 30, videoFps: 30 })).toEqual([0, 10, 19, 29]);
    expect(sampleFrameIndices({ totalFrames: 3, videoFps: 30 })).toEqual([0, 1, 2]);
    // Halves round to even: linspace(0, 5, 3) = [0, 2.5, 5] → [0, 2, 5].
    expect(sampleFrameIndices({ totalFrames: 6, numFrames: 3 })).toEqual([0, 2, 5]);
    // Unknown video fps → 24 (as the official processor): 48 frames = 2 s → 4 frames.
    expect(sampleFrameIndices({ totalFrames: 48 })).toEqual([0, 16, 31, 47]);
    // Long video: max_frames caps.
    expect(sampleFrameIndices({ totalFrames: 100000, videoFps: 10, maxFrames: 768 })).toHaveLength(768);
    expect(() => sampleFrameIndices({ totalFrames: 10, fps: 2, numFrames: 4 })).toThrow(/mutually exclusive/);
  });

  it('linspace keeps NumPy special cases (num = 1, endpoint exact)', () => {
    expect(linspace(0, 9, 1)).toEqual([0]);
    expect(linspace(0, 0, 3)).toEqual([0, 0, 0]);
    expect(linspace(0, 1, 4)[3]).toBe(1);
  });
});
