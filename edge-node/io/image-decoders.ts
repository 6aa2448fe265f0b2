/**
 * JPEG and WebP decoders for Node, plugged into shared/io/image/decode.ts through `ImageDecoder`.
 *
 * They run the WebAssembly builds of mozjpeg and libwebp (@jsquash). Those emscripten modules
 * fetch their .wasm by URL, which Node cannot do for package files, so each module is compiled
 * here from the bytes read off disk, once, on first use. Output is RGB (alpha dropped) with the
 * EXIF orientation applied, as the official loader (PIL + `exif_transpose`) gives.
 */
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import decodeJpeg, { init as initJpeg } from '@jsquash/jpeg/decode.js';
import decodeWebp, { init as initWebp } from '@jsquash/webp/decode.js';
import { type ImageDecoder, ImageFormat, PngImageDecoder } from '../../shared/io/image/decode.ts';
import { ImageDecodeError } from '../../shared/io/image/errors.ts';
import { applyExifOrientation, readExifOrientation } from '../../shared/io/image/exif.ts';
import type { RgbImage } from '../../shared/io/image/resize.ts';

const require = createRequire(import.meta.url);

/** Compiles a package's .wasm file and hands it to the codec's `init`; the promise is kept so this runs once. */
function lazyInit(wasmSpecifier: string, init: (m: WebAssembly.Module) => Promise<unknown>): () => Promise<void> {
  let ready: Promise<void> | undefined;
  return () => {
    ready ??= (async () => {
      const bytes = await readFile(require.resolve(wasmSpecifier));
      await init(await WebAssembly.compile(bytes));
    })();
    return ready;
  };
}

const jpegReady = lazyInit('@jsquash/jpeg/codec/dec/mozjpeg_dec.wasm', (m) => initJpeg(m));
const webpReady = lazyInit('@jsquash/webp/codec/dec/webp_dec.wasm', (m) => initWebp(m));

/** RGBA (what the codecs give) → RGB. */
function dropAlpha(rgba: Uint8ClampedArray | Uint8Array, width: number, height: number): RgbImage {
  const n = width * height;
  const out = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) {
    out[3 * i] = rgba[4 * i];
    out[3 * i + 1] = rgba[4 * i + 1];
    out[3 * i + 2] = rgba[4 * i + 2];
  }
  return { width, height, data: out };
}

/** An ArrayBuffer holding exactly `bytes` (the codecs take an ArrayBuffer, not a view). */
function exactBuffer(bytes: Uint8Array): ArrayBuffer {
  const copy = new Uint8Array(bytes.byteLength);
  copy.set(bytes);
  return copy.buffer;
}

async function decodeWith(
  what: string,
  bytes: Uint8Array,
  ready: () => Promise<void>,
  decode: (b: ArrayBuffer) => Promise<{ data: Uint8ClampedArray; width: number; height: number }>,
): Promise<RgbImage> {
  await ready();
  let img: { data: Uint8ClampedArray; width: number; height: number };
  try {
    img = await decode(exactBuffer(bytes));
  } catch (e) {
    throw new ImageDecodeError(`the ${what} file could not be decoded (damaged or truncated?)`, { cause: e });
  }
  return applyExifOrientation(dropAlpha(img.data, img.width, img.height), readExifOrientation(bytes));
}

/** JPEG through mozjpeg (WASM); EXIF orientation applied. */
export class JpegImageDecoder implements ImageDecoder {
  readonly formats = [ImageFormat.Jpeg] as const;
  decode(bytes: Uint8Array): Promise<RgbImage> {
    // preserveOrientation false: the codec leaves the pixels as stored; the orientation is applied here, like PIL.
    return decodeWith('JPEG', bytes, jpegReady, (b) => decodeJpeg(b, { preserveOrientation: false }));
  }
}

/** WebP (lossy, lossless, alpha) through libwebp (WASM); EXIF orientation applied. */
export class WebpImageDecoder implements ImageDecoder {
  readonly formats = [ImageFormat.Webp] as const;
  decode(bytes: Uint8Array): Promise<RgbImage> {
    return decodeWith('WebP', bytes, webpReady, (b) => decodeWebp(b));
  }
}

/**
 * The decoders the Node CLI uses: PNG (built in), JPEG and WebP.
 *
 * @example const img = await decodeImage(bytes, { decoders: nodeImageDecoders() });
 */
export function nodeImageDecoders(): ImageDecoder[] {
  return [new PngImageDecoder(), new JpegImageDecoder(), new WebpImageDecoder()];
}
