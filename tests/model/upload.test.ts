/**
 * Streaming checkpoint tensors to the GPU: every tensor of the realvocab checkpoint uploaded as
 * f32 (and f16) in small chunks equals a direct host decode of the file, bit for bit; F16 and F32
 * source tensors with odd sizes and special values convert exactly (f32 → f16 round to nearest
 * even, as f32ToF16Bits).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fileDirectory } from '../../edge-node/io/file-source.ts';
import { f32ToF16Bits } from '../../shared/gpu/f16.ts';
import { memorySource } from '../../shared/io/byte-source.ts';
import { Checkpoint, openCheckpoint } from '../../shared/io/safetensors.ts';
import { decodeToF16, decodeToF32, uploadTensor } from '../../shared/io/upload.ts';
import { checkpointUploader } from '../../shared/model/qwen3-vl/checkpoint.ts';
import { parseQwen3VLConfig } from '../../shared/model/qwen3-vl/config.ts';
import { loadWeights } from '../../shared/model/qwen3-vl/load.ts';
import { qwen3VLExpectedTensors } from '../../shared/model/qwen3-vl/weights.ts';
import { testContext } from '../support/gpu.ts';
import { Rng } from '../support/random.ts';
import { encodeSafetensors, tensorBytes } from '../support/safetensors-files.ts';

const realvocab = fileURLToPath(new URL('../fixtures/golden/realvocab/', import.meta.url));
const fileBytes = new Uint8Array(readFileSync(join(realvocab, 'model.safetensors')));
const ctx = await testContext();

/** Independent host decode: little-endian dtype bytes → f32 bit patterns (u32). */
function hostBits(dtype: string, bytes: Uint8Array): Uint32Array {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = bytes.byteLength / (dtype === 'F32' ? 4 : 2);
  const out = new Uint32Array(n);
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  for (let i = 0; i < n; i++) {
    if (dtype === 'F32') out[i] = dv.getUint32(4 * i, true);
    else if (dtype === 'BF16') out[i] = dv.getUint16(2 * i, true) * 65536;
    else {
      // F16 → f32 through the value (exact).
      const h = dv.getUint16(2 * i, true);
      const e = (h >> 10) & 31;
      const m = h & 1023;
      const s = h & 0x8000 ? -1 : 1;
      f[0] = e === 0 ? s * m * 2 ** -24 : e === 31 ? (m ? Number.NaN : s * Number.POSITIVE_INFINITY) : s * (1 + m / 1024) * 2 ** (e - 15);
      out[i] = u[0];
    }
  }
  return out;
}

/** Little-endian u16 values of the bytes. */
function hostU16(bytes: Uint8Array): Uint16Array {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return Uint16Array.from({ length: bytes.byteLength / 2 }, (_, i) => dv.getUint16(2 * i, true));
}

/** f32 bit patterns → expected f16 bit patterns. */
function toF16Bits(bits: Uint32Array): Uint16Array {
  const f = new Float32Array(bits.buffer, bits.byteOffset, bits.length);
  return Uint16Array.from(f, (v) => f32ToF16Bits(v));
}

/** Index of the first difference, or -1 (NaNs compared by bit pattern class). */
function firstDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Math.min(a.length, b.length);
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return -1;
}

describe.skipIf(!ctx)('uploadTensor', () => {
  let ckpt: Checkpoint;
  beforeAll(async () => {
    ckpt = await openCheckpoint(fileDirectory(realvocab));
  });
  afterAll(async () => {
    await ckpt?.close();
  });

  it('uploads every realvocab tensor as f32, equal to the host decode bit for bit', async () => {
    const c = ctx!;
    const raw = tensorBytes(fileBytes);
    expect(ckpt.size).toBe(104);
    for (const name of ckpt.names()) {
      // 64 KiB chunks: the embedding (9.7 MB) goes in 149 chunks; small tensors in one.
      const t = await uploadTensor(c, ckpt, name, { dtype: 'f32', chunkBytes: 64 << 10 });
      expect(t.shape).toEqual(ckpt.tensor(name).shape);
      expect(t.dtype).toBe('f32');
      const got = await c.readF32(t);
      const want = hostBits('BF16', raw.get(name)!.data);
      const at = firstDiff(new Uint32Array(got.buffer, got.byteOffset, got.length), want);
      expect(at, `${name} differs at element ${at}`).toBe(-1);
      t.release();
    }
  });

  it('uploads every realvocab tensor as f16 (bf16 fast path), equal to f32ToF16Bits of the host decode', async () => {
    // No shader touches these tensors, so the upload is checked even without shader-f16.
    const c = ctx!;
    const raw = tensorBytes(fileBytes);
    for (const name of ckpt.names()) {
      const t = await uploadTensor(c, ckpt, name, { dtype: 'f16', chunkBytes: (64 << 10) + 6 });
      expect(t.dtype).toBe('f16');
      const got = (await c.read(t)) as Uint16Array;
      const want = toF16Bits(hostBits('BF16', raw.get(name)!.data));
      const at = firstDiff(got, want);
      expect(at, `${name} differs at element ${at}`).toBe(-1);
      t.release();
    }
  });

  it('converts F16 and F32 sources of odd sizes, with special values, in tiny chunks', async () => {
    const c = ctx!;
    const rng = new Rng(20261123);
    const special = [0, -0, 1, -2, 65504, 65520, 1e6, -1e6, 2 ** -24, 2 ** -25, 3 * 2 ** -25, 1e-9, 1 + 2 ** -11, Infinity, -Infinity, Number.NaN];
    const f32Data = (n: number) => {
      const v = rng.normals(n, 3);
      special.forEach((s, i) => {
        if (i < n) v[(i * 7) % n] = s;
      });
      return v;
    };
    const f16Data = (n: number) => Uint16Array.from({ length: n }, (_, i) => (i < 4 ? [0x7c00, 0xfc00, 0x0001, 0x8000][i] : rng.int(0, 0xffff)));
    const bf16Data = (n: number) => Uint16Array.from({ length: n }, (_, i) => (i < 4 ? [0x7f80, 0x3380, 0x4780, 0x0001][i] : rng.int(0, 0xffff)));
    const bytesOf = (a: Float32Array | Uint16Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
    const file = encodeSafetensors({
      a32: { dtype: 'F32', shape: [37, 5], data: bytesOf(f32Data(185)) },
      b16: { dtype: 'F16', shape: [3, 7, 11], data: bytesOf(f16Data(231)) },
      c16: { dtype: 'BF16', shape: [1001], data: bytesOf(bf16Data(1001)) },
      one: { dtype: 'F32', shape: [1], data: bytesOf(new Float32Array([70000])) },
      odd: { dtype: 'F16', shape: [3], data: bytesOf(new Uint16Array([0x3c00, 0x3555, 0xfbff])) },
    });
    const mem = await Checkpoint.fromSources('mem', [memorySource(file, 'mem.safetensors')]);
    const raw = tensorBytes(file);
    for (const name of mem.names()) {
      const info = mem.tensor(name);
      const want32 = hostBits(info.dtype, raw.get(name)!.data);
      // F16 → f16 is a copy (NaN payloads kept); the others round through f32ToF16Bits.
      const want16 =
        info.dtype === 'F16' ? Uint16Array.from(hostU16(raw.get(name)!.data)) : toF16Bits(want32);
      // Host converters agree with the independent decode.
      const h32 = decodeToF32(info.dtype, raw.get(name)!.data);
      expect(firstDiff(new Uint32Array(h32.buffer, h32.byteOffset, h32.length), want32), name).toBe(-1);
      expect(firstDiff(decodeToF16(info.dtype, raw.get(name)!.data), want16), name).toBe(-1);
      for (const chunkBytes of [8, 30, 4096]) {
        const t32 = await uploadTensor(c, mem, name, { dtype: 'f32', chunkBytes, label: `${name}:f32` });
        const got32 = await c.readF32(t32);
        expect(firstDiff(new Uint32Array(got32.buffer, got32.byteOffset, got32.length), want32), `${name} f32 chunk ${chunkBytes}`).toBe(-1);
        t32.release();
        const t16 = await uploadTensor(c, mem, name, { dtype: 'f16', chunkBytes });
        expect(firstDiff((await c.read(t16)) as Uint16Array, want16), `${name} f16 chunk ${chunkBytes}`).toBe(-1);
        t16.release();
      }
    }
    // f32 → f16 rounding is as documented: 65520 → +Inf, 70000 → +Inf, 2^-25 → 0 (tie to even).
    expect(f32ToF16Bits(70000)).toBe(0x7c00);
  });

  it('feeds loadWeights (checkpointUploader): a middle stage gets only its layers', async () => {
    const c = ctx!;
    const config = parseQwen3VLConfig(JSON.parse(readFileSync(join(realvocab, 'config.json'), 'utf8')));
    const weights = await loadWeights(c, config, checkpointUploader(ckpt, { chunkBytes: 1000 }), { dtype: 'f32', layers: [1, 2] });
    const raw = tensorBytes(fileBytes);
    for (const e of qwen3VLExpectedTensors(config)) {
      const inStage = e.layer === 1;
      expect(weights.has(e.name), e.name).toBe(inStage);
      if (!inStage) continue;
      const got = await c.readF32(weights.get(e.name));
      expect(firstDiff(new Uint32Array(got.buffer, got.byteOffset, got.length), hostBits('BF16', raw.get(e.name)!.data)), e.name).toBe(-1);
    }
    weights.release();
  });

  it('releases the tensor and names file and tensor when a read fails', async () => {
    const c = ctx!;
    const file = encodeSafetensors({ w: { dtype: 'F32', shape: [64], data: new Uint8Array(256) } });
    const src = memorySource(file, 'w.safetensors');
    const mem = await Checkpoint.fromSources('mem', [src]);
    // The file shrinks after the header was read (e.g. replaced on disk).
    (src as { size: number }).size = file.byteLength - 100;
    const before = c.poolStats.bytesInUse;
    await expect(uploadTensor(c, mem, 'w', { dtype: 'f32', chunkBytes: 64 })).rejects.toThrow(
      /^w\.safetensors: reading tensor "w" failed: w\.safetensors: read of bytes \[\d+, \d+\) is past the end/,
    );
    expect(c.poolStats.bytesInUse).toBe(before);
  });
});
