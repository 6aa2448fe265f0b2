/**
 * The media of a parsed chat request made ready for the engine: `http(s):` images fetched
 * (media-fetch.ts vets every address), and the `video_url` part's video (inline or fetched) written
 * to a temporary file, checked with ffprobe against the duration limit, and decoded to the frames
 * the video processor samples.
 *
 *   remoteImages ─► fetchMedia(image/*) ─► images[index]
 *   videoSource  ─► bytes (data: or fetchMedia(video/*)) ─► tmp file ─► probeVideo (≤ maxVideoSeconds)
 *                ─► readVideoFrames (≤ maxFrames) ─► video
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ParsedChatRequest, VideoSource } from '../../shared/api/chat-completions.ts';
import { ApiError, ApiErrorType } from '../../shared/api/errors.ts';
import type { ImageInput, VideoFramesInput } from '../../shared/engine/engine.ts';
import { VlmeshError } from '../../shared/errors.ts';
import { FfmpegMissingError, probeVideo, readVideoFrames, VideoReadError } from '../io/video-ffmpeg.ts';
import { fetchMedia, type MediaAllowList, MediaFetchError, mediaFetchApiError } from './media-fetch.ts';

export const DEFAULT_MEDIA_TIMEOUT_S = 10;
export const DEFAULT_MAX_IMAGE_MB = 20;
export const DEFAULT_MAX_VIDEO_MB = 100;
export const DEFAULT_MAX_VIDEO_S = 120;

/** Limits and allow-list for the media of API requests (`vlmesh serve` flags). */
export interface MediaOptions extends MediaAllowList {
  /** Limit on one remote fetch, redirects and body included. */
  timeoutMs: number;
  /** Largest remote image body. */
  maxImageBytes: number;
  /** Largest remote video body (inline ones are bounded by the request body limit). */
  maxVideoBytes: number;
  /** Longest video accepted (from ffprobe, before decoding). */
  maxVideoSeconds: number;
  /** Frame sampling of the model's video processor (fps 2, 4 to 768 frames when absent). */
  videoSampling?: { fps?: number; minFrames?: number; maxFrames?: number };
}

const bad = (code: string, message: string, param: string) => new ApiError(400, ApiErrorType.InvalidRequest, code, message, param);

function fetchError(e: unknown, param: string): unknown {
  return e instanceof MediaFetchError ? mediaFetchApiError(e, param) : e;
}

async function videoFrames(src: VideoSource, o: MediaOptions): Promise<VideoFramesInput> {
  let bytes: Uint8Array;
  if ('url' in src) {
    try {
      ({ bytes } = await fetchMedia(src.url, { ...o, maxBytes: o.maxVideoBytes, allowedContentTypes: ['video/*'] }));
    } catch (e) {
      throw fetchError(e, src.param);
    }
  } else bytes = src.bytes;
  if (bytes.length === 0) throw bad('invalid_video', 'the video holds no bytes', src.param);
  const dir = await mkdtemp(join(tmpdir(), 'vlmesh-video-'));
  const file = join(dir, 'input');
  try {
    await writeFile(file, bytes);
    const p = await probeVideo(file);
    const seconds = p.durationSeconds || p.totalFrames / p.fps;
    if (seconds > o.maxVideoSeconds) {
      throw bad('video_too_long', `the video lasts ${seconds.toFixed(1)} s, longer than this server's limit of ${o.maxVideoSeconds} s`, src.param);
    }
    const v = await readVideoFrames(file, o.videoSampling);
    return { frames: v.frames, width: v.width, height: v.height, frameIndices: v.frameIndices, fps: v.fps };
  } catch (e) {
    if (e instanceof ApiError) throw e;
    if (e instanceof FfmpegMissingError) {
      throw new ApiError(500, ApiErrorType.Server, 'video_unsupported', `this server cannot decode video: ${e.message}`, src.param);
    }
    // Messages name the temporary file: say "the video" instead.
    const message = e instanceof Error ? e.message.replace(file, 'the video') : String(e);
    if (e instanceof VideoReadError) throw bad('invalid_video', message, src.param);
    if (e instanceof VlmeshError && e.code === 'IMAGE_TOO_LARGE') throw bad('video_too_large', message, src.param);
    throw e;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * Fetches the request's remote images and decodes its video; returns the request ready for the
 * engine (`images` complete, `video` set). Without `o`, a video is refused (400).
 *
 * @throws ApiError: 400 `media_fetch_forbidden`, `media_too_large`, `media_timeout`,
 *   `unsupported_media_type`, `media_fetch_failed`, `invalid_video`, `video_too_long`.
 */
export async function resolveRequestMedia(p: ParsedChatRequest, o: MediaOptions | undefined): Promise<ParsedChatRequest> {
  // Inline images obey the same byte cap as fetched ones (the body limit alone is larger).
  if (o) {
    for (const [i, img] of p.images.entries()) {
      if (img && img.bytes.length > o.maxImageBytes) {
        throw new ApiError(400, ApiErrorType.InvalidRequest, 'media_too_large', `image ${i + 1} has ${img.bytes.length} bytes, over the ${o.maxImageBytes}-byte limit (--max-image-mb)`, 'messages');
      }
    }
  }
  if (!p.remoteImages?.length && !p.videoSource) return p;
  if (!o) {
    const param = p.videoSource?.param ?? p.remoteImages?.[0]?.param ?? null;
    throw new ApiError(400, ApiErrorType.InvalidRequest, 'remote_media_unsupported', 'this server takes no remote media or video', param);
  }
  const images: ImageInput[] = [...p.images];
  await Promise.all(
    (p.remoteImages ?? []).map(async (r) => {
      try {
        const got = await fetchMedia(r.url, { ...o, maxBytes: o.maxImageBytes, allowedContentTypes: ['image/*'] });
        images[r.index] = { bytes: got.bytes, mimeType: got.contentType };
      } catch (e) {
        throw fetchError(e, r.param);
      }
    }),
  );
  const video = p.videoSource ? await videoFrames(p.videoSource, o) : undefined;
  const { remoteImages: _r, videoSource: _v, ...rest } = p;
  return { ...rest, images, ...(video ? { video } : {}) };
}
