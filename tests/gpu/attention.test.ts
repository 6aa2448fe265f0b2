import { describe, expect, it } from 'vitest';
import { ShapeError } from '../../shared/errors.ts';
import { flashPrefill, rowTile, visionVarlen } from '../../shared/kernels/attention/index.ts';
import { causalAttentionRef, varlenAttentionRef } from '../../shared/reference/attention.ts';
import { expectClose, type Tolerance } from '../support/close.ts';
import { testContext } from '../support/gpu.ts';
import { Rng } from '../support/random.ts';

const ctx = await testContext();

/**
 * Attention tolerance: 1e-4 abs + 1e-4 rel. The kernels compute the same softmax as the f64
 * reference but in f32, in another order: every key tile rescales the running sum and the
 * accumulator by exp(m_old − m_new), and f32 `exp` is a few ulps from the f64 one, so each tile
 * step adds a few ulps of relative error to values of order 1 (outputs are convex combinations
 * of v rows), and outputs near 0 (cancellation between v rows) keep that error as an absolute
 * one. 1e-4 abs is ~1000 ulps of 1.0: loose enough for S ≈ 200 keys, tight enough to catch any
 * wrong mask, tile edge or GQA head mapping (those are off by ≥ 1e-2).
 */
const ATTN_TOL: Tolerance = { atol: 1e-4, rtol: 1e-4 };

interface FlashCase {
  T: number;
  S: number;
  Hq: number;
  Hkv: number;
  hd: number;
  scale?: number;
  /** Standard deviation of q: > 1 makes the softmax peaky and the online rescaling matter. */
  qStd?: number;
}

async function checkFlash(o: FlashCase, seed: number) {
  const c = ctx!;
  const rng = new Rng(seed);
  const q = rng.normals(o.T * o.Hq * o.hd, o.qStd ?? 1);
  const k = rng.normals(o.S * o.Hkv * o.hd);
  const v = rng.normals(o.S * o.Hkv * o.hd);
  const qt = c.upload(q, [o.T, o.Hq, o.hd], 'f32', 'q');
  const kt = c.upload(k, [o.S, o.Hkv, o.hd], 'f32', 'k');
  const vt = c.upload(v, [o.S, o.Hkv, o.hd], 'f32', 'v');
  const out = c.empty([o.T, o.Hq, o.hd], 'f32', 'out');
  c.run(flashPrefill(c, { q: qt, k: kt, v: vt, out, scale: o.scale }));
  const got = await c.readF32(out);
  const want = causalAttentionRef({ q, k, v, T: o.T, S: o.S, Hq: o.Hq, Hkv: o.Hkv, headDim: o.hd, scale: o.scale });
  expectClose(got, want, ATTN_TOL, `flash-prefill ${JSON.stringify(o)}`);
  for (const t of [qt, kt, vt, out]) t.release();
}

describe.skipIf(!ctx)('attention/flash-prefill (causal, GQA, online softmax)', () => {
  it('tile sizes fit 256 invocations and 16 KiB for the model head dims', () => {
    for (const hd of [16, 64, 72, 128]) {
      const { BQ, BK } = rowTile('test', ctx!, hd);
      expect(BQ * BK).toBeLessThanOrEqual(256);
      expect(4 * (BQ * hd + BK * (hd + 1) + 2 * BQ * BK + BK)).toBeLessThanOrEqual(16384);
    }
    expect(rowTile('test', ctx!, 128).BQ).toBe(12);
  });

  it('tiny golden shapes and model shapes: T 1/7/33, S ≥ T, GQA 1/2/4', async () => {
    const cases: FlashCase[] = [
      { T: 1, S: 1, Hq: 4, Hkv: 2, hd: 16 },
      { T: 7, S: 7, Hq: 4, Hkv: 4, hd: 16 },
      { T: 33, S: 33, Hq: 4, Hkv: 2, hd: 16, qStd: 3 },
      { T: 33, S: 150, Hq: 8, Hkv: 2, hd: 128, qStd: 2 },
      { T: 7, S: 200, Hq: 16, Hkv: 8, hd: 128 },
      { T: 1, S: 97, Hq: 32, Hkv: 8, hd: 128, qStd: 3 },
      { T: 17, S: 40, Hq: 2, Hkv: 1, hd: 72, scale: 0.3 },
    ];
    for (const [i, o] of cases.entries()) await checkFlash(o, 10 + i);
  });

  it('random shapes', async () => {
    const rng = new Rng(11);
    for (let i = 0; i < 5; i++) {
      const Hkv = rng.pick([1, 2, 4]);
      const T = rng.int(1, 40);
      await checkFlash(
        { T, S: T + rng.int(0, 60), Hq: Hkv * rng.pick([1, 2, 4]), Hkv, hd: rng.pick([16, 72]), qStd: 2 },
        100 + i,
      );
    }
  });

  it('rejects inconsistent shapes with ShapeError', () => {
    const c = ctx!;
    const t = (shape: number[]) => c.empty(shape, 'f32', 't');
    expect(() => flashPrefill(c, { q: t([4, 3, 16]), k: t([4, 2, 16]), v: t([4, 2, 16]), out: t([4, 3, 16]) })).toThrow(
      ShapeError,
    );
    expect(() => flashPrefill(c, { q: t([5, 4, 16]), k: t([4, 2, 16]), v: t([4, 2, 16]), out: t([5, 4, 16]) })).toThrow(
      /last T of the S keys/,
    );
    expect(() => flashPrefill(c, { q: t([4, 4, 16]), k: t([4, 2, 16]), v: t([4, 2, 8]), out: t([4, 4, 16]) })).toThrow(
      /v must have shape \[4, 2, 16\]/,
    );
  });
});

async function checkVarlen(o: { H: number; hd: number; lens: number[]; qStd?: number }, seed: number) {
  const c = ctx!;
  const rng = new Rng(seed);
  const cu = [0];
  for (const n of o.lens) cu.push(cu[cu.length - 1] + n);
  const P = cu[cu.length - 1];
  const n = P * o.H * o.hd;
  const q = rng.normals(n, o.qStd ?? 1);
  const k = rng.normals(n);
  const v = rng.normals(n);
  const [qt, kt, vt] = [q, k, v].map((x, i) => c.upload(x, [P, o.H, o.hd], 'f32', 'qkv'[i]));
  const cut = c.upload(new Uint32Array(cu), [cu.length], 'u32', 'cu_seqlens');
  const out = c.empty([P, o.H, o.hd], 'f32', 'out');
  c.run(visionVarlen(c, { q: qt, k: kt, v: vt, cuSeqlens: cut, out }));
  const got = await c.readF32(out);
  const want = varlenAttentionRef({ q, k, v, P, H: o.H, headDim: o.hd, cuSeqlens: cu });
  expectClose(got, want, ATTN_TOL, `vision-varlen ${JSON.stringify(o)}`);
  for (const t of [qt, kt, vt, cut, out]) t.release();
}

describe.skipIf(!ctx)('attention/vision-varlen (block-diagonal, bidirectional)', () => {
  it('golden ViT shapes: segments of odd lengths, including 1 and tiles spanning segments', async () => {
    await checkVarlen({ H: 2, hd: 16, lens: [5, 7, 38, 1, 46], qStd: 3 }, 20);
    await checkVarlen({ H: 2, hd: 16, lens: [33] }, 21);
    await checkVarlen({ H: 1, hd: 16, lens: [1] }, 22);
  });

  it('model head dims: 16 heads of 64, heads of 72 (8B), video frames as segments', async () => {
    await checkVarlen({ H: 16, hd: 64, lens: [24, 24, 24] }, 23);
    await checkVarlen({ H: 3, hd: 72, lens: [20, 41, 3], qStd: 2 }, 24);
  });

  it('random segmentations', async () => {
    const rng = new Rng(25);
    for (let i = 0; i < 3; i++) {
      const lens = Array.from({ length: rng.int(1, 6) }, () => rng.int(1, 30));
      await checkVarlen({ H: rng.int(1, 3), hd: 16, lens, qStd: 2 }, 200 + i);
    }
  });

  it('rejects cu_seqlens without a segment', () => {
    const c = ctx!;
    const t = c.empty([4, 2, 16], 'f32', 't');
    const cu = c.upload(new Uint32Array([0]), [1], 'u32', 'cu');
    expect(() => visionVarlen(c, { q: t, k: t, v: t, cuSeqlens: cu, out: t })).toThrow(ShapeError);
  });
});
