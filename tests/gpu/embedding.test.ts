import { describe, expect, it } from 'vitest';
import { ShapeError } from '../../shared/errors.ts';
import type { GpuContext } from '../../shared/gpu/context.ts';
import { roundToF16, toF16Array } from '../../shared/gpu/f16.ts';
import { gather, gatherCalls } from '../../shared/kernels/embedding/index.ts';
import { gatherRef } from '../../shared/reference/embedding.ts';
import { testContext } from '../support/gpu.ts';
import { Rng } from '../support/random.ts';

const ctx = await testContext();
// Storage windows capped at 8 KiB: the same windowed path the real 622 MB table takes.
const small = await testContext({ maxBindingBytes: 8192 });

interface Case {
  V: number;
  D: number;
  T: number;
  f16: boolean;
  idsOffset?: number;
  outOffset?: number;
  ldo?: number;
  /** Extra ids that must come out as zero rows (no host ids then). */
  outOfRange?: number[];
  seed: number;
}

/**
 * A gather copies: f32 rows exactly, f16 rows widened exactly to f32. So the comparison is exact
 * equality against the reference on the same (f16-rounded) table.
 */
async function check(c: GpuContext, o: Case): Promise<number> {
  const rng = new Rng(o.seed);
  const idsOffset = o.idsOffset ?? 0;
  const outOffset = o.outOffset ?? 0;
  const ldo = o.ldo ?? o.D;
  let table: Float32Array = rng.normals(o.V * o.D);
  if (o.f16) table = roundToF16(table);
  const tokenIds: number[] = [];
  // Both ends of the table, then random rows (repeats included).
  for (let t = 0; t < o.T; t++) tokenIds.push(t === 0 ? 0 : t === 1 ? o.V - 1 : rng.int(0, o.V - 1));
  for (const bad of o.outOfRange ?? []) tokenIds.splice(rng.int(0, tokenIds.length), 0, bad);
  const T = tokenIds.length;
  const ids = new Uint32Array(idsOffset + T);
  ids.set(tokenIds, idsOffset);
  const idt = c.upload(ids, [ids.length], 'u32', 'ids');
  const tt = c.upload(o.f16 ? toF16Array(table) : table, [o.V, o.D], o.f16 ? 'f16' : 'f32', 'embed_tokens');
  const outLen = outOffset + (T - 1) * ldo + o.D + 2;
  const ot = c.upload(new Float32Array(outLen).fill(-7), [outLen], 'f32', 'hidden');
  const args = { ids: idt, table: tt, out: ot, tokens: T, idsOffset, outOffset, ldo, hostIds: o.outOfRange ? undefined : tokenIds };
  const calls = gatherCalls(c, args);
  gather(c, args);
  const out = await c.readF32(ot);
  const want = gatherRef(table, o.V, o.D, tokenIds);
  const got = new Float32Array(T * o.D);
  for (let t = 0; t < T; t++) got.set(out.subarray(outOffset + t * ldo, outOffset + t * ldo + o.D), t * o.D);
  expect(got, JSON.stringify(o)).toEqual(want);
  // Everything outside the written rows is untouched.
  const touched: number[] = [];
  for (let i = 0; i < outLen; i++) {
    const rel = i - outOffset;
    const inRow = rel >= 0 && rel % ldo < o.D && Math.floor(rel / ldo) < T;
    if (!inRow && out[i] !== -7) touched.push(i);
  }
  expect(touched, 'elements written outside the output rows').toEqual([]);
  for (const t of [idt, tt, ot]) t.release();
  return calls.length;
}

describe.skipIf(!ctx)('embedding gather (whole table in one binding)', () => {
  it('random odd shapes, f32 and f16 tables, offsets and a row stride', async () => {
    const c = ctx!;
    const rng = new Rng(1);
    for (let i = 0; i < 6; i++) {
      for (const f16 of [false, true]) {
        const D = rng.int(1, 300);
        const calls = await check(c, {
          V: rng.int(2, 400), D, T: rng.int(1, 40), f16,
          idsOffset: rng.int(0, 5), outOffset: rng.int(0, 7), ldo: D + rng.int(0, 3), seed: 10 + i,
        });
        expect(calls).toBe(1);
      }
    }
  });

  it('a row wider than one workgroup (D = 2048 + 3)', async () => {
    await check(ctx!, { V: 9, D: 2051, T: 5, f16: true, seed: 20 });
  });

  it('ids outside the table: rejected on the host, zero rows on the device', async () => {
    const c = ctx!;
    await check(c, { V: 50, D: 33, T: 6, f16: false, outOfRange: [50, 0xffffffff, 1234567], seed: 21 });
    const ids = c.upload(new Uint32Array([1, 2, 60]), [3], 'u32', 'ids');
    const table = c.zeros([50, 8], 'f32', 'embed_tokens');
    const out = c.zeros([3, 8], 'f32', 'hidden');
    expect(() => gatherCalls(c, { ids, table, out, hostIds: [1, 2, 60] })).toThrow(/token id 60 at position 2.*\[0, 50\)/);
    expect(() => gatherCalls(c, { ids, table, out, hostIds: [1, 2] })).toThrow(ShapeError);
    expect(() => gatherCalls(c, { ids, table, out: c.zeros([2, 8], 'f32', 'short') })).toThrow(/short.*needs 24/);
    expect(() => gatherCalls(c, { ids: table, table, out })).toThrow(/ids.*u32/);
  });
});

describe.skipIf(!small)('embedding gather with the table split into binding windows', () => {
  it('uses many aligned windows and matches the reference (f32 and f16, odd D for f32)', async () => {
    const c = small!;
    const rng = new Rng(2);
    for (const [i, o] of [
      { V: 500, D: 23, f16: false },
      { V: 777, D: 36, f16: true },
      { V: 301, D: 64, f16: false },
      { V: 1000, D: 10, f16: true },
    ].entries()) {
      const calls = await check(c, {
        ...o, T: rng.int(30, 90), idsOffset: rng.int(0, 3), outOffset: rng.int(0, 3), ldo: o.D + 1, seed: 30 + i,
        outOfRange: i === 3 ? [o.V, o.V + 1] : undefined,
      });
      expect(calls, JSON.stringify(o)).toBeGreaterThan(2);
    }
  });

  it('every window starts at an aligned byte offset and fits one binding', () => {
    const c = small!;
    const table = c.zeros([500, 23], 'f32', 'embed_tokens');
    const ids = c.zeros([4], 'u32', 'ids');
    const out = c.zeros([4, 23], 'f32', 'hidden');
    const calls = gatherCalls(c, { ids, table, out });
    let rows = 0;
    for (const call of calls) {
      const w = call.bindings[1];
      if (!('offset' in w)) throw new Error('table binding is not a window');
      expect((w.offset * 4) % c.caps.limits.minStorageBufferOffsetAlignment).toBe(0);
      expect(w.size * 4).toBeLessThanOrEqual(8192);
      rows += w.size / 23;
    }
    expect(rows).toBe(500);
  });
});
