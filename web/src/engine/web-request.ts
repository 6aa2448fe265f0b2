/**
 * What the web app hands an engine: the shared `GenerationRequest`, plus the raw bytes of the
 * turn's video file. The server engine sends the file itself (`video_url` data: URL, decoded by
 * the edge node's ffmpeg); an in-tab engine uses the frames the page sampled (`video`).
 */
import type { GenerationRequest } from '../../../shared/engine/engine.ts';

/** A video file as the user picked it. */
export interface VideoFileInput {
  bytes: Uint8Array;
  mimeType: string;
  name?: string;
}

/** A `GenerationRequest` that may also carry the turn's video file. */
export interface WebGenerationRequest extends GenerationRequest {
  videoFile?: VideoFileInput;
}

/** Standard base64 of bytes (chunked so large images do not overflow the call stack). */
export function bytesToBase64(bytes: Uint8Array): string {
  let bin = '';
  const step = 0x8000;
  for (let i = 0; i < bytes.length; i += step) {
    bin += String.fromCharCode(...bytes.subarray(i, Math.min(i + step, bytes.length)));
  }
  return btoa(bin);
}

/** A `data:` URL for bytes of the given media type. */
export function dataUrl(bytes: Uint8Array, mimeType: string): string {
  return `data:${mimeType};base64,${bytesToBase64(bytes)}`;
}

/** The image's media type from its magic bytes, else the declared type, else PNG. */
export function imageMimeType(bytes: Uint8Array, declared?: string): string {
  if (bytes[0] === 0x89 && bytes[1] === 0x50 && bytes[2] === 0x4e && bytes[3] === 0x47) return 'image/png';
  if (bytes[0] === 0xff && bytes[1] === 0xd8) return 'image/jpeg';
  if (bytes[0] === 0x52 && bytes[1] === 0x49 && bytes[2] === 0x46 && bytes[3] === 0x46 && bytes[8] === 0x57 && bytes[9] === 0x45) return 'image/webp';
  return declared?.startsWith('image/') ? declared : 'image/png';
}
