/**
 * Video frames for the CLI through the system's ffmpeg: `ffprobe` reads the stream facts (fps,
 * frame count, size), shared/io/image/video.ts picks the frame indices the official
 * Qwen3VLVideoProcessor would keep, and one `ffmpeg` run decodes exactly those frames to raw RGB.
 *
 *   ffprobe → {fps, frames, W, H} → sampleFrameIndices → ffmpeg -vf select='eq(n\,i0)+eq(n\,i1)…'
 *                                                         -f rawvideo -pix_fmt rgb24 -  → N·H·W·3 bytes
 *
 * Frames are taken as stored (`-noautorotate`: rotation metadata is not applied), as the decoders
 * the official processor uses return them.
 */
import { spawn } from 'node:child_process';
import { access } from 'node:fs/promises';
import { VlmeshError } from '../../shared/errors.ts';
import { assertWithinPixelLimit, DEFAULT_MAX_INPUT_PIXELS } from '../../shared/io/image/limits.ts';
import { sampleFrameIndices } from '../../shared/io/image/video.ts';

/** ffmpeg / ffprobe is not on PATH. */
export class FfmpegMissingError extends VlmeshError {
  readonly tool: string;
  constructor(tool: string) {
    super('FFMPEG_MISSING', `${tool} was not found on PATH; video input needs ffmpeg (Debian/Ubuntu: apt-get install ffmpeg)`);
    this.tool = tool;
  }
}

/** The file is missing, unreadable, not a video, or ffmpeg failed on it. */
export class VideoReadError extends VlmeshError {
  readonly path: string;
  constructor(path: string, message: string, options?: { cause?: unknown }) {
    super('VIDEO_READ', `${path}: ${message}`, options);
    this.path = path;
  }
}

export interface ReadVideoOptions {
  /** Frames to sample per second of video (default 2, as the official processor). */
  fps?: number;
  /** Default 4. */
  minFrames?: number;
  /** Default 768. */
  maxFrames?: number;
  /** Limit on one frame's width·height, checked before decoding (default DEFAULT_MAX_INPUT_PIXELS). */
  maxPixels?: number;
}

export interface VideoFrames {
  /** Sampled frames, each H·W·3 RGB bytes, in index order. */
  frames: Uint8Array[];
  width: number;
  height: number;
  /** The video's own frame rate (for timestamps). */
  fps: number;
  /** Index in the video of each returned frame. */
  frameIndices: number[];
}

export interface VideoProbe {
  width: number;
  height: number;
  fps: number;
  totalFrames: number;
  durationSeconds: number;
}

function runTool(tool: string, args: string[], path: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const p = spawn(tool, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let err = '';
    p.stdout.on('data', (d: Buffer) => out.push(d));
    p.stderr.on('data', (d: Buffer) => {
      err = (err + d.toString()).slice(-4000);
    });
    p.on('error', (e: NodeJS.ErrnoException) => reject(e.code === 'ENOENT' ? new FfmpegMissingError(tool) : e));
    p.on('close', (code) => {
      if (code === 0) resolve(Buffer.concat(out));
      else {
        const last = err.trim().split('\n').slice(-2).join('; ') || `exit status ${code}`;
        reject(new VideoReadError(path, `${tool} could not read it (${last})`));
      }
    });
  });
}

/** "30000/1001" → 29.97; undefined for "0/0" and the like. */
function parseRate(r: unknown): number | undefined {
  if (typeof r !== 'string') return undefined;
  const [n, d = '1'] = r.split('/');
  const v = Number(n) / Number(d);
  return Number.isFinite(v) && v > 0 ? v : undefined;
}

function positive(v: unknown): number | undefined {
  const n = typeof v === 'string' ? Number(v) : typeof v === 'number' ? v : Number.NaN;
  return Number.isFinite(n) && n > 0 ? n : undefined;
}

/**
 * Stream facts of the first video stream. The frame count comes from the container (`nb_frames`),
 * else from counting packets, else duration · fps.
 *
 * @throws FfmpegMissingError, VideoReadError.
 */
export async function probeVideo(path: string): Promise<VideoProbe> {
  try {
    await access(path);
  } catch (e) {
    throw new VideoReadError(path, 'the file does not exist or cannot be read', { cause: e });
  }
  const probe = async (extra: string[]) =>
    JSON.parse(
      (
        await runTool(
          'ffprobe',
          ['-v', 'error', '-select_streams', 'v:0', ...extra, '-show_entries',
            'stream=width,height,avg_frame_rate,r_frame_rate,nb_frames,nb_read_packets,duration:format=duration', '-of', 'json', path],
          path,
        )
      ).toString(),
    ) as { streams?: Record<string, unknown>[]; format?: Record<string, unknown> };
  let info = await probe([]);
  let s = info.streams?.[0];
  if (!s) throw new VideoReadError(path, 'it has no video stream');
  if (positive(s.nb_frames) === undefined) {
    info = await probe(['-count_packets']);
    s = info.streams?.[0] ?? s;
  }
  const width = positive(s.width);
  const height = positive(s.height);
  if (!width || !height) throw new VideoReadError(path, 'ffprobe reports no frame size');
  const fps = parseRate(s.avg_frame_rate) ?? parseRate(s.r_frame_rate);
  if (!fps) throw new VideoReadError(path, 'ffprobe reports no frame rate');
  const durationSeconds = positive(s.duration) ?? positive(info.format?.duration) ?? 0;
  const counted = positive(s.nb_frames) ?? positive(s.nb_read_packets);
  const totalFrames = Math.trunc(counted ?? Math.round(durationSeconds * fps));
  if (!(totalFrames > 0)) throw new VideoReadError(path, 'ffprobe could not count its frames');
  return { width, height, fps, totalFrames, durationSeconds };
}

/**
 * Decodes the frames the official video processor samples (fps mode) as RGB bytes.
 *
 * @throws FfmpegMissingError (ffmpeg / ffprobe not installed), VideoReadError (missing or damaged
 *   file), ImageTooLargeError (frames above `maxPixels`).
 * @example const { frames, width, height, fps, frameIndices } = await readVideoFrames('clip.mp4');
 */
export async function readVideoFrames(path: string, o: ReadVideoOptions = {}): Promise<VideoFrames> {
  const p = await probeVideo(path);
  assertWithinPixelLimit(p.width, p.height, o.maxPixels ?? DEFAULT_MAX_INPUT_PIXELS);
  const frameIndices = sampleFrameIndices({
    totalFrames: p.totalFrames,
    videoFps: p.fps,
    fps: o.fps,
    minFrames: o.minFrames,
    maxFrames: o.maxFrames,
  });
  // Distinct indices (rounding can repeat one when frames are few); duplicates are copied after.
  const unique = [...new Set(frameIndices)];
  const select = unique.map((i) => `eq(n\\,${i})`).join('+');
  const raw = await runTool(
    'ffmpeg',
    ['-v', 'error', '-nostdin', '-noautorotate', '-i', path, '-map', '0:v:0', '-vf', `select='${select}'`,
      '-vsync', '0', '-f', 'rawvideo', '-pix_fmt', 'rgb24', '-'],
    path,
  );
  const frameBytes = p.width * p.height * 3;
  const got = Math.floor(raw.length / frameBytes);
  if (got < unique.length || raw.length % frameBytes !== 0) {
    throw new VideoReadError(
      path,
      `ffmpeg returned ${got} of the ${unique.length} sampled frames (the container's frame count ${p.totalFrames} may be wrong, or the file is truncated)`,
    );
  }
  const byIndex = new Map<number, Uint8Array>();
  for (const [k, i] of unique.entries()) byIndex.set(i, new Uint8Array(raw.buffer, raw.byteOffset + k * frameBytes, frameBytes));
  return {
    frames: frameIndices.map((i) => byIndex.get(i) as Uint8Array),
    width: p.width,
    height: p.height,
    fps: p.fps,
    frameIndices,
  };
}
