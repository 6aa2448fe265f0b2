/**
 * Video frame sampling and timestamps, as transformers' Qwen3VLVideoProcessor.sample_frames and
 * Qwen3VLProcessor._calculate_timestamps compute them.
 *
 * Sampling (fps mode, the default with fps = 2):
 *   k = int(total / videoFps · fps), clamped to [minFrames, maxFrames] and then to ≤ total
 *   indices = round_half_even(linspace(0, total − 1, k))     (NumPy linspace + .round())
 *
 * Timestamps: the index list is padded to a multiple of the temporal patch by repeating the last
 * index (as the frames are), each index becomes index / videoFps seconds, and each temporal patch
 * gets the mean of its first and last frame time. The prompt shows them as `<{t:.1f} seconds>`
 * (Python formatting: exact ties round to even, 0.25 → "0.2").
 *
 *   indices 0 15 30 | 30(pad)   fps 30   →   (0 + 0.5)/2 = 0.25, (1 + 1)/2 = 1.0   →   <0.2 seconds> <1.0 seconds>
 */
import { PreprocessArgumentError } from './errors.ts';
import { formatFixed, roundHalfEven } from './pyround.ts';

/** Frame rate the official processor assumes when the video's own fps is unknown. */
export const DEFAULT_VIDEO_FPS = 24;

export interface SampleFramesOptions {
  /** Number of frames in the decoded video. */
  totalFrames: number;
  /** The video's frame rate; unknown → DEFAULT_VIDEO_FPS (the official processor warns and does the same). */
  videoFps?: number;
  /** Frames to sample per second (default 2). Mutually exclusive with `numFrames`. */
  fps?: number;
  /** Exact number of frames to sample (no clamping to min/max, as the official code). */
  numFrames?: number;
  /** Default 4. */
  minFrames?: number;
  /** Default 768. */
  maxFrames?: number;
}

/** NumPy `np.linspace(start, stop, num)` (endpoint=True) for num ≥ 1, same float operations. */
export function linspace(start: number, stop: number, num: number): number[] {
  const out = new Array<number>(num);
  const div = num - 1;
  const delta = stop - start;
  if (div <= 0) {
    for (let i = 0; i < num; i++) out[i] = i * delta + start; // NumPy: step is nan, y = y·delta
    return out;
  }
  const step = delta / div;
  for (let i = 0; i < num; i++) out[i] = step === 0 ? (i / div) * delta + start : i * step + start;
  out[num - 1] = stop;
  return out;
}

/**
 * Indices of the frames the official video processor keeps.
 *
 * @example sampleFrameIndices({ totalFrames: 60, videoFps: 30 }) // 4 frames (2 s · 2 fps): [0, 20, 39, 59]
 */
export function sampleFrameIndices(opts: SampleFramesOptions): number[] {
  const { totalFrames, minFrames = 4, maxFrames = 768 } = opts;
  if (!Number.isSafeInteger(totalFrames) || totalFrames <= 0) {
    throw new PreprocessArgumentError(`totalFrames must be a positive integer, got ${totalFrames}`);
  }
  if (opts.fps !== undefined && opts.numFrames !== undefined) {
    throw new PreprocessArgumentError('`numFrames` and `fps` are mutually exclusive');
  }
  let num = opts.numFrames;
  if (num === undefined) {
    const fps = opts.fps ?? 2;
    const videoFps = opts.videoFps ?? DEFAULT_VIDEO_FPS;
    if (!(fps > 0) || !(videoFps > 0)) throw new PreprocessArgumentError(`fps must be positive (fps ${fps}, video fps ${videoFps})`);
    num = Math.trunc((totalFrames / videoFps) * fps); // Python int() of a float
    num = Math.min(Math.max(num, minFrames), maxFrames, totalFrames);
  }
  if (!Number.isSafeInteger(num) || num <= 0) throw new PreprocessArgumentError(`number of frames must be a positive integer, got ${num}`);
  return linspace(0, totalFrames - 1, num).map(roundHalfEven);
}

/**
 * Seconds per temporal patch: pad the indices to a multiple of `temporalPatchSize` with the last
 * index, then (t_first + t_last) / 2 of each patch, t = index / videoFps.
 */
export function temporalPatchTimestamps(frameIndices: readonly number[], videoFps: number, temporalPatchSize = 2): number[] {
  if (frameIndices.length === 0) throw new PreprocessArgumentError('no frame indices');
  if (!(videoFps > 0)) throw new PreprocessArgumentError(`video fps must be positive, got ${videoFps}`);
  const idx = [...frameIndices];
  while (idx.length % temporalPatchSize !== 0) idx.push(idx[idx.length - 1]);
  const secs = idx.map((i) => i / videoFps);
  const out: number[] = [];
  for (let i = 0; i < secs.length; i += temporalPatchSize) out.push((secs[i] + secs[i + temporalPatchSize - 1]) / 2);
  return out;
}

/** The prompt text of one timestamp: Python `f"<{t:.1f} seconds>"`. */
export function formatTimestamp(seconds: number): string {
  return `<${formatFixed(seconds, 1)} seconds>`;
}
