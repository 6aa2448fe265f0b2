/**
 * zlib (RFC 1950) inflate with the platform's `DecompressionStream('deflate')` (browsers and
 * Node ≥ 18), so this code needs no Node module and no dependency.
 *
 * The caller states how many bytes it expects: reading stops there (a decompression bomb cannot
 * grow memory past the announced image size) and a shorter stream is an error.
 */
import { ImageDecodeError } from './errors.ts';

/**
 * Inflates a zlib stream into exactly `expectedSize` bytes. Extra output past that size is
 * ignored (the stream is cancelled); less output, or a corrupt stream, throws ImageDecodeError.
 */
export async function inflateZlib(data: Uint8Array, expectedSize: number, what = 'zlib data'): Promise<Uint8Array> {
  if (typeof DecompressionStream === 'undefined') {
    throw new ImageDecodeError('this runtime has no DecompressionStream (Node ≥ 18 or a current browser is required)');
  }
  const out = new Uint8Array(expectedSize);
  const ds = new DecompressionStream('deflate');
  const writer = ds.writable.getWriter();
  // Not awaited: the write completes only as the readable side is drained. Failures surface on read.
  writer.write(new Uint8Array(data)).catch(() => {});
  writer.close().catch(() => {});
  const reader = ds.readable.getReader();
  let filled = 0;
  try {
    while (filled < expectedSize) {
      const { done, value } = await reader.read();
      if (done) break;
      const n = Math.min(value.length, expectedSize - filled);
      out.set(n === value.length ? value : value.subarray(0, n), filled);
      filled += n;
    }
  } catch (e) {
    throw new ImageDecodeError(`${what} is corrupt: ${(e as Error)?.message ?? e}`, { cause: e });
  } finally {
    reader.cancel().catch(() => {});
  }
  if (filled < expectedSize) {
    throw new ImageDecodeError(`${what} is truncated: inflated ${filled} of ${expectedSize} bytes`);
  }
  return out;
}
