/**
 * Sending files over HTTP with validators and byte ranges: content types, `ETag` (size + mtime)
 * and `Last-Modified`, conditional GETs (`If-None-Match` / `If-Modified-Since` → 304), and single
 * `Range: bytes=…` requests (206 with `Content-Range`, 416 when unsatisfiable; `If-Range` with a
 * stale validator gets the whole file). Multi-range requests get the whole file (RFC 9110 allows
 * ignoring Range). Used for the web app's files and the model files of `/models/`.
 */
import { createReadStream, type Stats } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { extname } from 'node:path';

export const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.map': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.webp': 'image/webp',
  '.ico': 'image/x-icon',
  '.wasm': 'application/wasm',
  '.woff2': 'font/woff2',
  '.txt': 'text/plain; charset=utf-8',
  '.jinja': 'text/plain; charset=utf-8',
  '.wgsl': 'text/plain; charset=utf-8',
  '.safetensors': 'application/octet-stream',
};

/** The content type for a file name (application/octet-stream when unknown). */
export function contentTypeOf(file: string): string {
  return CONTENT_TYPES[extname(file).toLowerCase()] ?? 'application/octet-stream';
}

/** A strong validator from size and modification time (what changes when a file is replaced). */
export function etagOf(st: Stats): string {
  return `"${st.size.toString(16)}-${Math.floor(st.mtimeMs).toString(16)}"`;
}

/** A parsed single byte range, inclusive; 'unsatisfiable'; or null to send the whole file. */
export function parseRange(header: string | undefined, size: number): { start: number; end: number } | 'unsatisfiable' | null {
  if (!header) return null;
  const m = /^bytes=\s*(\d*)\s*-\s*(\d*)\s*$/.exec(header.trim());
  if (!m) return null; // multi-range or another unit: ignore, send everything
  const [, a, b] = m;
  if (a === '' && b === '') return null;
  if (a === '') {
    const n = Number(b);
    if (n === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(a);
  const end = b === '' ? size - 1 : Math.min(Number(b), size - 1);
  if (start >= size || (b !== '' && Number(b) < start)) return 'unsatisfiable';
  return { start, end };
}

export interface SendFileOptions {
  /** `Cache-Control` value. */
  cacheControl: string;
  /** Content type; default from the extension. */
  contentType?: string;
  /** Honour `Range` (206). Default true. */
  ranges?: boolean;
  /** Extra headers. */
  headers?: Record<string, string>;
  /** The status of a full answer (default 200). */
  status?: number;
}

/**
 * Sends `path` (already vetted by the caller) for a GET or HEAD. Resolves false when the file
 * does not exist or is not a regular file (nothing was sent), true otherwise.
 *
 * @example
 * if (!(await sendFile(req, res, full, { cacheControl: 'no-cache' }))) notFound(res);
 */
export async function sendFile(req: IncomingMessage, res: ServerResponse, path: string, o: SendFileOptions): Promise<boolean> {
  let st: Stats;
  try {
    st = await stat(path);
  } catch {
    return false;
  }
  if (!st.isFile()) return false;
  const etag = etagOf(st);
  const lastModified = new Date(Math.floor(st.mtimeMs / 1000) * 1000).toUTCString();
  const base: Record<string, string> = {
    'content-type': o.contentType ?? contentTypeOf(path),
    'cache-control': o.cacheControl,
    etag,
    'last-modified': lastModified,
    'x-content-type-options': 'nosniff',
    ...(o.ranges === false ? {} : { 'accept-ranges': 'bytes' }),
    ...o.headers,
  };
  const inm = req.headers['if-none-match'];
  const ims = req.headers['if-modified-since'];
  const notModified =
    inm !== undefined ? inm.split(',').some((t) => t.trim().replace(/^W\//, '') === etag || t.trim() === '*') : ims !== undefined && Date.parse(ims) >= Date.parse(lastModified);
  if (notModified && (o.status ?? 200) === 200) {
    const { 'content-type': _t, ...rest } = base;
    res.writeHead(304, rest);
    res.end();
    return true;
  }
  let range = o.ranges === false ? null : parseRange(req.headers.range, st.size);
  const ifRange = req.headers['if-range'];
  if (range && ifRange !== undefined && ifRange !== etag && ifRange !== lastModified) range = null;
  if (range === 'unsatisfiable') {
    res.writeHead(416, { ...base, 'content-range': `bytes */${st.size}`, 'content-length': '0' });
    res.end();
    return true;
  }
  const start = range ? range.start : 0;
  const end = range ? range.end : st.size - 1;
  const length = st.size === 0 ? 0 : end - start + 1;
  res.writeHead(range ? 206 : (o.status ?? 200), {
    ...base,
    'content-length': String(length),
    ...(range ? { 'content-range': `bytes ${start}-${end}/${st.size}` } : {}),
  });
  if (req.method === 'HEAD' || length === 0) {
    res.end();
    return true;
  }
  await new Promise<void>((resolve) => {
    const stream = createReadStream(path, { start, end });
    stream.on('error', () => {
      res.destroy();
      resolve();
    });
    res.on('close', () => {
      stream.destroy();
      resolve();
    });
    stream.pipe(res);
  });
  return true;
}
