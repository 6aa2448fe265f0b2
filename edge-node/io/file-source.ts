/**
 * Byte sources over files on disk: positional reads through one `FileHandle` per file, so a
 * multi-GB checkpoint is read range by range and never loaded whole.
 */
import { type FileHandle, open } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { type ByteSource, type ByteSourceDirectory, checkReadRange } from '../../shared/io/byte-source.ts';
import { ByteSourceError } from '../../shared/io/errors.ts';

/** A file opened for positional reads. Close it when done (`close()` is idempotent). */
export class FileSource implements ByteSource {
  private handle: FileHandle | null;

  private constructor(
    handle: FileHandle,
    readonly path: string,
    readonly name: string,
    readonly size: number,
  ) {
    this.handle = handle;
  }

  /**
   * Opens `path`. `name` (what error messages call it) defaults to the base name.
   *
   * @example
   * const src = await FileSource.open('/models/qwen3-vl-2b/model.safetensors');
   */
  static async open(path: string, name = basename(path)): Promise<FileSource> {
    const handle = await open(path, 'r');
    try {
      const stat = await handle.stat();
      if (!stat.isFile()) throw new ByteSourceError(name, `${path} is not a regular file`);
      return new FileSource(handle, path, name, stat.size);
    } catch (e) {
      await handle.close();
      throw e;
    }
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    checkReadRange(this, offset, length);
    if (!this.handle) throw new ByteSourceError(this.name, `${this.name}: read after close`);
    // A fresh ArrayBuffer (offset 0), so callers may view it as Uint16Array/Float32Array.
    const out = new Uint8Array(length);
    let done = 0;
    while (done < length) {
      const { bytesRead } = await this.handle.read(out, done, length - done, offset + done);
      if (bytesRead === 0) {
        throw new ByteSourceError(
          this.name,
          `${this.name}: file ended at byte ${offset + done} while reading [${offset}, ${offset + length}); ` +
            `it was ${this.size} bytes when opened (changed on disk?)`,
        );
      }
      done += bytesRead;
    }
    return out;
  }

  async close(): Promise<void> {
    const h = this.handle;
    this.handle = null;
    await h?.close();
  }
}

/**
 * A directory on disk as a `ByteSourceDirectory`: `open(name)` opens `dir/name`, or answers
 * null when there is no such file. Opened sources are the caller's to close.
 *
 * @example
 * const ckpt = await openCheckpoint(fileDirectory('/models/qwen3-vl-2b'));
 */
export function fileDirectory(dir: string): ByteSourceDirectory {
  return {
    name: dir,
    async open(file: string): Promise<ByteSource | null> {
      try {
        return await FileSource.open(join(dir, file), file);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
        throw e;
      }
    },
  };
}
