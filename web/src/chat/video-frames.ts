/**
 * Samples a short video into RGB frames in the page, for engines that run in the tab (the edge
 * node decodes videos itself with ffmpeg). The browser does not expose a file's frame rate, so
 * frames are indexed on a 24 fps grid (`DEFAULT_VIDEO_FPS`, what the official processor assumes
 * when the rate is unknown) and picked with the official sampling (`sampleFrameIndices`: 2 per
 * second, at least 4); each is seeked to and drawn on a canvas at its natural size.
 */
import type { VideoFramesInput } from '../../../shared/engine/engine.ts';
import { VlmeshError } from '../../../shared/errors.ts';
import { DEFAULT_VIDEO_FPS, sampleFrameIndices } from '../../../shared/io/image/video.ts';

/** The browser could not decode the video. */
export class VideoDecodeError extends VlmeshError {
  constructor(message: string) {
    super('VIDEO_DECODE', message);
  }
}

function once(el: HTMLMediaElement, event: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const ok = () => {
      el.removeEventListener('error', bad);
      resolve();
    };
    const bad = () => {
      el.removeEventListener(event, ok);
      reject(new VideoDecodeError(`this browser cannot decode the video (${el.error?.message || 'unsupported format'})`));
    };
    el.addEventListener(event, ok, { once: true });
    el.addEventListener('error', bad, { once: true });
  });
}

/**
 * Decodes and samples a video file.
 *
 * @example
 * const frames = await sampleVideoFrames(file, { maxFrames: 32 });
 */
export async function sampleVideoFrames(blob: Blob, o: { fps?: number; minFrames?: number; maxFrames?: number } = {}): Promise<VideoFramesInput> {
  const url = URL.createObjectURL(blob);
  const video = document.createElement('video');
  video.muted = true;
  video.preload = 'auto';
  try {
    const meta = once(video, 'loadedmetadata');
    video.src = url;
    await meta;
    const { videoWidth: width, videoHeight: height, duration } = video;
    if (!width || !height || !Number.isFinite(duration) || duration <= 0) throw new VideoDecodeError('the video has no frames this browser can read');
    const fps = DEFAULT_VIDEO_FPS;
    const totalFrames = Math.max(1, Math.floor(duration * fps));
    const indices = sampleFrameIndices({ totalFrames, videoFps: fps, fps: o.fps ?? 2, minFrames: o.minFrames ?? 4, maxFrames: o.maxFrames ?? 768 });
    const canvas = document.createElement('canvas');
    canvas.width = width;
    canvas.height = height;
    const g = canvas.getContext('2d', { willReadFrequently: true });
    if (!g) throw new VideoDecodeError('no 2D canvas to read video frames');
    const frames: Uint8Array[] = [];
    for (const idx of indices) {
      const seeked = once(video, 'seeked');
      video.currentTime = Math.min(duration - 1e-3, (idx + 0.5) / fps);
      await seeked;
      g.drawImage(video, 0, 0, width, height);
      const rgba = g.getImageData(0, 0, width, height).data;
      const rgb = new Uint8Array(width * height * 3);
      for (let p = 0, q = 0; p < rgba.length; p += 4, q += 3) {
        rgb[q] = rgba[p]!;
        rgb[q + 1] = rgba[p + 1]!;
        rgb[q + 2] = rgba[p + 2]!;
      }
      frames.push(rgb);
    }
    return { frames, width, height, frameIndices: indices, fps };
  } finally {
    video.removeAttribute('src');
    video.load();
    URL.revokeObjectURL(url);
  }
}
