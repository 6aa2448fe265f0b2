/**
 * A model directory on the edge node (`/models/<name>/`) read with HTTP Range requests, as a
 * `ByteSourceDirectory`: the checkpoint reader asks only for the byte ranges of the tensors it
 * loads, so a mesh stage downloads the header and its own layers' weights, never the whole file.
 *
 *   open(file)  HEAD-like probe: GET bytes=0-0 → 206, size from Content-Range (404 → null)
 *   read(o, n)  GET bytes=o-(o+n-1) → 206, exactly n bytes
 */

import { type ByteSource, type ByteSourceDirectory, checkReadRange } from '../../../shared/io/byte-source.ts';
import { ByteSourceError } from '../../../shared/io/errors.ts';
import { parseContentRange } from '../local/weight-store.ts';

export interface HttpDirectoryOptions {
  /** Extra request headers (an API key). */
  headers?: Record<string, string>;
  /** Counts the bytes downloaded (for the page). */
  onBytes?: (n: number) => void;
}

/**
 * @example
 * const dir = httpDirectory('/models/tiny/');
 * const opened = await openQwen3VLCheckpoint(dir);
 */
export function httpDirectory(baseUrl: string, o: HttpDirectoryOptions = {}): ByteSourceDirectory {
  const base = new URL(baseUrl, globalThis.location?.href);
  if (!base.pathname.endsWith('/')) base.pathname += '/';
  const get = (url: string, start: number, end: number) => fetch(url, { headers: { ...o.headers, range: `bytes=${start}-${end}` }, cache: 'no-store' });
  return {
    name: base.pathname,
    async open(file: string): Promise<ByteSource | null> {
      const url = new URL(file, base).href;
      const probe = await get(url, 0, 0);
      if (probe.status === 404) return null;
      if (probe.status !== 206) throw new ByteSourceError(file, `${url}: the server answered ${probe.status} to a Range request`);
      const range = parseContentRange(probe.headers.get('content-range'));
      await probe.arrayBuffer();
      if (!range) throw new ByteSourceError(file, `${url}: no usable Content-Range in the answer`);
      const size = range.size;
      return {
        name: file,
        size,
        async read(offset: number, length: number): Promise<Uint8Array> {
          checkReadRange({ name: file, size }, offset, length);
          if (length === 0) return new Uint8Array(0);
          const res = await get(url, offset, offset + length - 1);
          if (res.status !== 206) throw new ByteSourceError(file, `${url}: the server answered ${res.status} to bytes ${offset}-${offset + length - 1}`);
          const bytes = new Uint8Array(await res.arrayBuffer());
          if (bytes.length !== length) throw new ByteSourceError(file, `${url}: asked for ${length} bytes at ${offset}, got ${bytes.length}`);
          o.onBytes?.(length);
          return bytes;
        },
      };
    },
  };
}
