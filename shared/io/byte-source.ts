/**
 * Random-access bytes, the same on every platform: a file on disk (edge-node/io/file-source.ts),
 * a `Blob`/`File` in the browser (blob-source.ts), bytes already in memory (`memorySource`), or
 * later an HTTP resource read with Range requests. Checkpoint readers only ever ask for byte
 * ranges, so a multi-GB file is never held in memory.
 */
import { ByteSourceError } from './errors.ts';

/** A read-only, random-access run of bytes with a known size. */
export interface ByteSource {
  /** What a user would call it (a file name): error messages name it. */
  readonly name: string;
  /** Total size in bytes. */
  readonly size: number;
  /**
   * Exactly `length` bytes starting at `offset`. The range must lie within `[0, size)`; a source
   * that cannot deliver all of them throws `ByteSourceError`. The returned array is the caller's
   * (the source keeps no reference to it).
   */
  read(offset: number, length: number): Promise<Uint8Array>;
  /** Releases what the source holds open (a file handle). Optional; idempotent. */
  close?(): Promise<void>;
}

/**
 * A directory-like set of named byte sources (a checkpoint folder, a browser folder picker, a
 * base URL). `open` answers `null` when there is no file of that name.
 */
export interface ByteSourceDirectory {
  /** What a user would call the directory: error messages name it. */
  readonly name: string;
  open(file: string): Promise<ByteSource | null> | ByteSource | null;
}

/**
 * Throws unless `[offset, offset + length)` is a valid range of `src`.
 * Implementations call it first so every source reports bad ranges the same way.
 */
export function checkReadRange(src: { name: string; size: number }, offset: number, length: number): void {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
    throw new ByteSourceError(src.name, `${src.name}: invalid read of ${length} bytes at offset ${offset}`);
  }
  if (offset + length > src.size) {
    throw new ByteSourceError(
      src.name,
      `${src.name}: read of bytes [${offset}, ${offset + length}) is past the end of the file (${src.size} bytes)`,
    );
  }
}

/**
 * A byte source over bytes already in memory (tests; files fetched whole).
 *
 * @example
 * const src = memorySource(new Uint8Array(await (await fetch(url)).arrayBuffer()), 'config.json');
 */
export function memorySource(bytes: Uint8Array, name: string): ByteSource {
  const src: ByteSource = {
    name,
    size: bytes.byteLength,
    async read(offset: number, length: number): Promise<Uint8Array> {
      checkReadRange(src, offset, length);
      return bytes.slice(offset, offset + length);
    },
  };
  return src;
}

/**
 * A directory over in-memory sources, keyed by file name.
 *
 * @example
 * const dir = memoryDirectory('upload', [memorySource(a, 'config.json'), memorySource(b, 'model.safetensors')]);
 */
export function memoryDirectory(name: string, sources: Iterable<ByteSource>): ByteSourceDirectory {
  const byName = new Map<string, ByteSource>();
  for (const s of sources) byName.set(s.name, s);
  return { name, open: (file) => byName.get(file) ?? null };
}

/** The whole source as bytes. Only for small files (configs, headers). */
export async function readAll(src: ByteSource): Promise<Uint8Array> {
  return src.read(0, src.size);
}

/** The whole source decoded as UTF-8 (a BOM is dropped). */
export async function readText(src: ByteSource): Promise<string> {
  return new TextDecoder('utf-8', { fatal: false }).decode(await readAll(src));
}

