/**
 * The q4 linear kernels (`gemv-q4`, `matmul-q4`) against the fp64 reference of the dequantized
 * weight, on random shapes (N not a multiple of the workgroup's columns, K of 1 to many groups,
 * group sizes 32/64/128, f32 and — where the adapter has shader-f16 — f16 scales), plus batch
 * invariance of gemv-q4, row windows and the dispatch on the weight kind.
 */
import { describe, expect, it } from 'vitest';
import { ShapeError } from '../../shared/errors.ts';
import { toF16Array } from '../../shared/gpu/f16.ts';
import { type Q4ScaleDType, quantizeQ4 } from '../../shared/io/quant-q4.ts';
import {
  GEMV_Q4,
  type LinearQ4Variant,
  linear,
  linearCalls,
  MATMUL_Q4,
  QuantizedWeight,
  selectLinear,
} from '../../shared/kernels/linear/index.ts';
import { linearQ4Ref } from '../../shared/reference/linear-q4.ts';
import { expectClose, F32_TOL } from '../support/close.ts';
import { testContext } from '../support/gpu.ts';
import { Rng } from '../support/random.ts';

const ctx = await testContext();

/**
 * The reference dequantizes the same codes and stored scales exactly, so only the f32
 * accumulation order differs (and gemv-q4 multiplies each 32-element block sum by its scale
 * once): the f32 kernel tolerance applies.
 */
async function check(
  variant: LinearQ4Variant,
  o: { M: number; N: number; K: number; G: number; bias: boolean; st: Q4ScaleDType; ldx?: number; xOffset?: number; seed: number },
) {
  const c = ctx!;
  const rng = new Rng(o.seed);
  const ldx = o.ldx ?? o.K;
  const xOffset = o.xOffset ?? 0;
  const x = rng.normals(xOffset + o.M * ldx);
  const w = rng.normals(o.N * o.K, 1 / Math.sqrt(o.K));
  const q = quantizeQ4(w, o.N, o.K, { groupSize: o.G, scaleDtype: o.st });
  const b = o.bias ? rng.normals(o.N, 0.1) : undefined;
  const xt = c.upload(x, [x.length], 'f32', 'x');
  const qw = QuantizedWeight.upload(c, q, 'w');
  // The bias has the scales' dtype; the reference reads it back as stored.
  const bt = b ? (o.st === 'f16' ? c.upload(toF16Array(b), [o.N], 'f16', 'b') : c.upload(b, [o.N], 'f32', 'b')) : undefined;
  const bRef = bt ? await c.readF32(bt) : undefined;
  const ldy = o.N + 3;
  const yOffset = 5;
  const yt = c.zeros([yOffset + o.M * ldy], 'f32', 'y');
  linear(c, { x: xt, w: qw, bias: bt, y: yt, M: o.M, N: o.N, K: o.K, ldx, xOffset, ldy, yOffset }, variant);
  const y = await c.readF32(yt);
  const got = new Float32Array(o.M * o.N);
  for (let m = 0; m < o.M; m++) got.set(y.subarray(yOffset + m * ldy, yOffset + m * ldy + o.N), m * o.N);
  const want = linearQ4Ref({ x, w: q, bias: bRef, M: o.M, ldx, xOffset });
  expectClose(got, want, F32_TOL, `${variant} ${JSON.stringify(o)}`);
  expect(y[0]).toBe(0); // prefix untouched
  for (const t of [xt, qw, bt, yt]) t?.release();
}

describe.skipIf(!ctx)('linear with q4 weights', () => {
  const scaleTypes = (): Q4ScaleDType[] => (ctx!.caps.f16 ? ['f32', 'f16'] : ['f32']);
  const shapeK = (rng: Rng, G: number) => G * rng.int(1, 12);

  it('gemv-q4: decode shapes, 1 to 8 rows, group sizes 32/64/128', async () => {
    const rng = new Rng(11);
    for (const M of [1, 3, 5, 8]) {
      for (const st of scaleTypes()) {
        const G = rng.pick([32, 64, 128]);
        const K = shapeK(rng, G);
        await check(GEMV_Q4, {
          M, N: rng.int(1, 300), K, G, bias: M % 2 === 1, st,
          ldx: K + 4 * rng.int(0, 2), xOffset: 4 * rng.int(0, 3), seed: 1100 + M,
        });
      }
    }
  });

  it('gemv-q4: long rows (32 lanes per column)', async () => {
    for (const st of scaleTypes()) await check(GEMV_Q4, { M: 3, N: 70, K: 4096, G: 32, bias: false, st, seed: 1200 });
  });

  it('matmul-q4: prefill shapes not multiples of the 64×64 tile', async () => {
    const rng = new Rng(12);
    for (let i = 0; i < 4; i++) {
      for (const st of scaleTypes()) {
        const G = rng.pick([32, 64, 128]);
        const K = shapeK(rng, G);
        await check(MATMUL_Q4, {
          M: rng.int(9, 150), N: rng.int(1, 130), K, G, bias: i % 2 === 0, st,
          ldx: K + 4 * rng.int(0, 2), xOffset: 4 * rng.int(0, 3), seed: 1300 + i,
        });
      }
    }
  });

  it('gemv-q4: a row gives the same bits alone and in a batch of 8', async () => {
    const c = ctx!;
    const rng = new Rng(13);
    const N = 200, K = 320, M = 8;
    const q = quantizeQ4(rng.normals(N * K, 0.05), N, K, { groupSize: 32 });
    const qw = QuantizedWeight.upload(c, q, 'w');
    const x = rng.normals(M * K);
    const xt = c.upload(x, [M, K], 'f32', 'x');
    const batch = c.zeros([M, N], 'f32', 'y8');
    linear(c, { x: xt, w: qw, y: batch, M, N, K });
    const all = await c.readF32(batch);
    for (const m of [0, 3, 7]) {
      const one = c.zeros([1, N], 'f32', 'y1');
      linear(c, { x: xt, xOffset: m * K, w: qw, y: one, M: 1, N, K });
      expect(Array.from(await c.readF32(one))).toEqual(Array.from(all.subarray(m * N, (m + 1) * N)));
      one.release();
    }
    for (const t of [qw, xt, batch]) t.release();
  });

  it('selects gemv-q4 for decode and matmul-q4 for prefill; rejects mismatched kernels and bias dtypes', () => {
    const c = ctx!;
    const t = c.zeros([64 * 32], 'f32', 't');
    const qw = QuantizedWeight.upload(c, quantizeQ4(new Float32Array(32), 1, 32), 'w');
    expect(selectLinear(c, { x: t, w: qw, y: t, M: 1, N: 1, K: 32 })).toBe(GEMV_Q4);
    expect(selectLinear(c, { x: t, w: qw, y: t, M: 9, N: 1, K: 32 })).toBe(MATMUL_Q4);
    expect(() => linearCalls(c, { x: t, w: qw, y: t, M: 1, N: 1, K: 32 }, 'linear/gemv')).toThrow(ShapeError);
    const plain = c.zeros([1, 32], 'f32', 'plain');
    expect(() => linearCalls(c, { x: t, w: plain, y: t, M: 1, N: 1, K: 32 }, GEMV_Q4)).toThrow(ShapeError);
    const b16 = c.zeros([2], 'u32', 'bias');
    expect(() => linearCalls(c, { x: t, w: qw, bias: b16, y: t, M: 1, N: 1, K: 32 })).toThrow(/bias/);
    expect(() => linearCalls(c, { x: t, w: qw, y: t, M: 1, N: 1, K: 32, xOffset: 2 })).toThrow(ShapeError);
    for (const u of [t, qw, plain, b16]) u.release();
  });
});

describe.skipIf(!ctx)('q4 linear with weights split into binding windows', async () => {
  const small = await testContext({ maxBindingBytes: 8192 });

  it('splits codes, scales and bias into aligned row windows and matches the reference', async () => {
    const c = small!;
    const rng = new Rng(14);
    for (const M of [2, 20]) {
      const N = 700, K = 64;
      const x = rng.normals(M * K);
      const q = quantizeQ4(rng.normals(N * K, 0.1), N, K, { groupSize: 32 });
      const b = rng.normals(N);
      const xt = c.upload(x, [M, K], 'f32', 'x');
      const qw = QuantizedWeight.upload(c, q, 'w');
      const bt = c.upload(b, [N], 'f32', 'b');
      const yt = c.zeros([M, N], 'f32', 'y');
      const calls = linearCalls(c, { x: xt, w: qw, bias: bt, y: yt, M, N, K });
      expect(calls.length).toBeGreaterThan(1);
      for (const call of calls) c.run(call);
      expectClose(await c.readF32(yt), linearQ4Ref({ x, w: q, bias: b, M }), F32_TOL, `windowed q4 linear M=${M}`);
      for (const t of [xt, qw, bt, yt]) t.release();
    }
  });
});
