import { describe, expect, it } from 'vitest';
import { isLlvmpipe } from '../../shared/gpu/capabilities.ts';
import { roundToF16, toF16Array } from '../../shared/gpu/f16.ts';
import type { LinearVariant } from '../../shared/kernels/linear/index.ts';
import { GEMV, linear, linearCalls, MATMUL_ROWS, MATMUL_TILED, MATMUL_VEC4, matmulRowsSupported, selectLinear } from '../../shared/kernels/linear/index.ts';
import { linearRef } from '../../shared/reference/linear.ts';
import { expectClose, F32_TOL } from '../support/close.ts';
import { testContext } from '../support/gpu.ts';
import { Rng } from '../support/random.ts';

const ctx = await testContext();

/**
 * f16 weights: the reference uses the same f16-rounded weights, so only the accumulation
 * order differs (f32 on both sides): the f32 tolerance still applies.
 */
async function check(
  variant: LinearVariant,
  o: { M: number; N: number; K: number; bias: boolean; f16: boolean; ldx?: number; xOffset?: number; seed: number },
) {
  const c = ctx!;
  const rng = new Rng(o.seed);
  const ldx = o.ldx ?? o.K;
  const xOffset = o.xOffset ?? 0;
  const x = rng.normals(xOffset + o.M * ldx);
  let w = rng.normals(o.N * o.K, 1 / Math.sqrt(o.K));
  let b = o.bias ? rng.normals(o.N, 0.1) : undefined;
  if (o.f16) {
    w = roundToF16(w);
    b = b && roundToF16(b);
  }
  const dt = o.f16 ? 'f16' : 'f32';
  const xt = c.upload(x, [x.length], 'f32', 'x');
  const wt = c.upload(o.f16 ? toF16Array(w) : w, [o.N, o.K], dt, 'w');
  const bt = b ? c.upload(o.f16 ? toF16Array(b) : b, [o.N], dt, 'b') : undefined;
  // y gets a prefix and a wider row stride to check yOffset/ldy.
  const ldy = o.N + 3;
  const yOffset = 5;
  const yt = c.zeros([yOffset + o.M * ldy], 'f32', 'y');
  linear(c, { x: xt, w: wt, bias: bt, y: yt, M: o.M, N: o.N, K: o.K, ldx, xOffset, ldy, yOffset }, variant);
  const y = await c.readF32(yt);
  const got = new Float32Array(o.M * o.N);
  for (let m = 0; m < o.M; m++) got.set(y.subarray(yOffset + m * ldy, yOffset + m * ldy + o.N), m * o.N);
  const want = linearRef({ x, w, bias: b, M: o.M, N: o.N, K: o.K, ldx, xOffset });
  expectClose(got, want, F32_TOL, `${variant} ${JSON.stringify(o)}`);
  expect(y[0]).toBe(0); // prefix untouched
  for (const t of [xt, wt, bt, yt]) t?.release();
}

describe.skipIf(!ctx)('linear y = x·Wᵀ + b', () => {
  const dtypes = () => (ctx!.caps.f16 ? [false, true] : [false]);

  it('matmul-tiled: random odd shapes, offsets, with and without bias', async () => {
    const rng = new Rng(1);
    for (let i = 0; i < 6; i++) {
      for (const f16 of dtypes()) {
        const K = rng.int(1, 70);
        await check(MATMUL_TILED, {
          M: rng.int(1, 40), N: rng.int(1, 50), K, bias: i % 2 === 0, f16,
          ldx: K + rng.int(0, 3), xOffset: rng.int(0, 7), seed: 100 + i,
        });
      }
    }
  });

  it('matmul-vec4: prefill shapes not multiples of the 64×64 tile', async () => {
    const rng = new Rng(2);
    for (let i = 0; i < 5; i++) {
      for (const f16 of dtypes()) {
        const K = 4 * rng.int(1, 40);
        await check(MATMUL_VEC4, {
          M: rng.int(9, 150), N: rng.int(1, 130), K, bias: i % 2 === 1, f16,
          ldx: K + 4 * rng.int(0, 2), xOffset: 4 * rng.int(0, 3), seed: 200 + i,
        });
      }
    }
  });

  it('matmul-rows: shapes not multiples of its tiles, offsets; a row gives the same bits in any tile', async (t) => {
    const c = ctx!;
    if (!matmulRowsSupported(c)) t.skip(); // needs subgroups of one fixed size
    const rng = new Rng(5);
    for (let i = 0; i < 6; i++) {
      for (const f16 of dtypes()) {
        const K = 4 * rng.int(1, 40);
        await check(MATMUL_ROWS, {
          M: i < 2 ? rng.int(1, 9) : rng.int(9, 150), N: rng.int(1, 300), K, bias: i % 2 === 0, f16,
          ldx: K + 4 * rng.int(0, 2), xOffset: 4 * rng.int(0, 3), seed: 500 + i,
        });
      }
    }
    // Decode-sized calls (other tiles) give the same bits for the same rows as a prefill-sized
    // call: batch invariance. K = 4·odd leaves a partial block of K at the end.
    for (const f16 of dtypes()) {
      const M = 70, N = 130, K = 92;
      const x = c.upload(rng.normals(M * K), [M, K], 'f32', 'x');
      const wHost = rng.normals(N * K);
      const w = f16 ? c.upload(toF16Array(wHost), [N, K], 'f16', 'w') : c.upload(wHost, [N, K], 'f32', 'w');
      const ya = c.empty([M, N], 'f32', 'ya');
      linear(c, { x, w, y: ya, M, N, K }, MATMUL_ROWS);
      const all = await c.readF32(ya);
      for (const rows of [1, 2, 3, 5, 8]) {
        const first = 7;
        const yr = c.empty([rows, N], 'f32', 'yr');
        linear(c, { x, w, y: yr, M: rows, N, K, xOffset: first * K }, MATMUL_ROWS);
        expect(await c.readF32(yr), `f16=${f16} rows=${rows}`).toEqual(all.slice(first * N, (first + rows) * N));
        yr.release();
      }
      for (const t2 of [x, w, ya]) t2.release();
    }
  });

  it('gemv: decode shapes, 1 to 8 rows', async () => {
    const rng = new Rng(3);
    for (const M of [1, 2, 4, 5, 8]) {
      for (const f16 of dtypes()) {
        const K = 4 * rng.int(1, 100);
        await check(GEMV, { M, N: rng.int(1, 300), K, bias: M % 2 === 1, f16, xOffset: 4 * rng.int(0, 2), seed: 300 + M });
      }
    }
  });

  it('selects gemv for decode, vec4 for prefill (rows for both on llvmpipe), tiled for odd K', () => {
    const c = ctx!;
    const t = c.zeros([4], 'f32', 't');
    const w = c.zeros([1, 4], 'f32', 'w');
    const rows = isLlvmpipe(c.adapter) && matmulRowsSupported(c);
    expect(selectLinear(c, { x: t, w, y: t, M: 1, N: 1, K: 4 })).toBe(rows ? MATMUL_ROWS : GEMV);
    expect(selectLinear(c, { x: t, w, y: t, M: 64, N: 1, K: 4 })).toBe(rows ? MATMUL_ROWS : MATMUL_VEC4);
    expect(selectLinear(c, { x: t, w, y: t, M: 64, N: 1, K: 3 })).toBe(MATMUL_TILED);
  });
});

describe.skipIf(!ctx)('linear with weights split into binding windows', async () => {
  // A context whose storage windows are capped at 8 KiB exercises the same windowing path that
  // weights above maxStorageBufferBindingSize take, with small tensors.
  const small = await testContext({ maxBindingBytes: 8192 });

  it('splits W and bias into aligned row windows and matches the reference', async () => {
    const c = small!;
    const rng = new Rng(4);
    const M = 3, N = 500, K = 20;
    const x = rng.normals(M * K);
    const w = rng.normals(N * K);
    const b = rng.normals(N);
    const xt = c.upload(x, [M, K], 'f32', 'x');
    const wt = c.upload(w, [N, K], 'f32', 'w');
    const bt = c.upload(b, [N], 'f32', 'b');
    const yt = c.zeros([M, N], 'f32', 'y');
    const calls = linearCalls(c, { x: xt, w: wt, bias: bt, y: yt, M, N, K });
    expect(calls.length).toBeGreaterThan(1);
    for (const call of calls) c.run(call);
    expectClose(await c.readF32(yt), linearRef({ x, w, bias: b, M, N, K }), F32_TOL, 'windowed linear');
  });
});
