/**
 * `GET /models/<served-model-name>/<file>`: the served model's own files, read-only, for the
 * in-browser engine to download (with `Range` for resumable downloads, and validators so a cached
 * copy can be checked). Only the files a model directory is made of are published:
 *
 *   config.json  generation_config.json  preprocessor_config.json  video_preprocessor_config.json
 *   model.safetensors  model-00001-of-00002.safetensors …  model.safetensors.index.json
 *   tokenizer.json  tokenizer_config.json  (tokenizer*.json)  chat_template.json  chat_template.jinja
 *
 * Anything else — other names, nested paths, `..`, encoded slashes or NULs — is a 404. The served
 * name may itself hold a slash (a hub repo id, `Qwen/Qwen3-VL-2B-Instruct`).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join } from 'node:path';
import { sendFile } from './static-files.ts';

/** File names of a model directory that may be published. */
export const MODEL_FILE_PATTERN =
  /^(?:config\.json|generation_config\.json|preprocessor_config\.json|video_preprocessor_config\.json|model\.safetensors\.index\.json|[A-Za-z0-9._-]+\.safetensors|tokenizer[A-Za-z0-9._-]*\.json|chat_template\.(?:json|jinja))$/;

/** Whether `name` is a publishable model file (a single path segment from the allowlist). */
export function isModelFile(name: string): boolean {
  return !name.includes('/') && !name.includes('\\') && !name.startsWith('.') && MODEL_FILE_PATTERN.test(name);
}

/** The URL path under which a model's files are served (percent-encoded, ending in '/'). */
export function modelFilesPath(servedName: string): string {
  return `/models/${servedName.split('/').map(encodeURIComponent).join('/')}/`;
}

export interface ModelFilesOptions {
  /** The model directory on disk. */
  dir: string;
  /** The served model name (the `model` of the API). */
  name: string;
}

/**
 * A handler for `/models/…` paths: resolves true when it answered (file, 304, 206, 416 or 404).
 *
 * @example
 * const models = modelFilesHandler({ dir: '/models/qwen', name: 'qwen' });
 * if (path.startsWith('/models/')) await models(req, res, path);
 */
export function modelFilesHandler(o: ModelFilesOptions | null) {
  return async (req: IncomingMessage, res: ServerResponse, rawPath: string, notFound: () => void): Promise<void> => {
    if (!o) return notFound();
    let path: string;
    try {
      // Decode per segment so an encoded slash (%2F) cannot create a new segment.
      path = rawPath
        .split('/')
        .map((seg) => {
          const d = decodeURIComponent(seg);
          if (d.includes('/') || d.includes('\\') || d.includes('\0')) throw new Error('bad segment');
          return d;
        })
        .join('/');
    } catch {
      return notFound();
    }
    const prefix = `/models/${o.name}/`;
    if (!path.startsWith(prefix)) return notFound();
    const file = path.slice(prefix.length);
    if (!isModelFile(file)) return notFound();
    const sent = await sendFile(req, res, join(o.dir, file), { cacheControl: 'no-cache' });
    if (!sent) notFound();
  };
}
