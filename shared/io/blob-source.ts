/**
 * Byte sources over `Blob`s and `File`s (a browser file or folder picker, a drag and drop, a
 * cached response body): each read slices the blob, so only the requested range is loaded.
 */
import { type ByteSource, type ByteSourceDirectory, checkReadRange } from './byte-source.ts';
import { ByteSourceError } from './errors.ts';

/**
 * A byte source over a Blob. `name` defaults to the File's name.
 *
 * @example
 * const src = blobSource(input.files[0]);
 */
export function blobSource(blob: Blob, name?: string): ByteSource {
  const label = name ?? (blob as Partial<File>).name ?? 'blob';
  const src: ByteSource = {
    name: label,
    size: blob.size,
    async read(offset: number, length: number): Promise<Uint8Array> {
      checkReadRange(src, offset, length);
      let buf: ArrayBuffer;
      try {
        buf = await blob.slice(offset, offset + length).arrayBuffer();
      } catch (e) {
        throw new ByteSourceError(label, `${label}: reading bytes [${offset}, ${offset + length}) failed: ${String(e)}`, {
          cause: e,
        });
      }
      if (buf.byteLength !== length) {
        throw new ByteSourceError(label, `${label}: asked for ${length} bytes at ${offset}, got ${buf.byteLength}`);
      }
      return new Uint8Array(buf);
    },
  };
  return src;
}

/**
 * A directory over picked files, matched by base name (the part of `webkitRelativePath` or
 * `name` after the last '/'), so a folder picked with `<input webkitdirectory>` works.
 *
 * @example
 * const dir = blobDirectory('Qwen3-VL-2B', Array.from(input.files));
 * const ckpt = await openCheckpoint(dir);
 */
export function blobDirectory(name: string, files: Iterable<File>): ByteSourceDirectory {
  const byName = new Map<string, File>();
  for (const f of files) {
    const path = f.webkitRelativePath || f.name;
    byName.set(path.slice(path.lastIndexOf('/') + 1), f);
  }
  return {
    name,
    open(file: string) {
      const f = byName.get(file);
      return f ? blobSource(f, file) : null;
    },
  };
}
