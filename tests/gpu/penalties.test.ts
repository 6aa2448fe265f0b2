import { describe, expect, it } from 'vitest';
import { applyPenalties, PenaltyState, PenaltyStateError } from '../../shared/engine/penalties.ts';
import { ShapeError } from '../../shared/errors.ts';
import { type PenaltySettings, penalties, validatePenalties } from '../../shared/kernels/sample/penalties.ts';
import { SamplingError } from '../../shared/kernels/sample/top-k-top-p.ts';
import { penaltiesRef } from '../../shared/reference/penalties.ts';
import { expectClose, F32_TOL } from '../support/close.ts';
import { testContext } from '../support/gpu.ts';
import { Rng } from '../support/random.ts';

const ctx = await testContext();

interface Row {
  prompt: number[];
  output: number[];
  s: PenaltySettings;
}

/** Random ids in [0, V) drawn from a small pool so that repeats (counts > 1) are common. */
function ids(rng: Rng, n: number, V: number): number[] {
  const pool = Array.from({ length: Math.max(1, Math.min(V, Math.ceil(n / 2) + 3)) }, () => rng.int(0, V - 1));
  return Array.from({ length: n }, () => rng.pick(pool));
}

function randomRow(rng: Rng, V: number): Row {
  return {
    prompt: ids(rng, rng.int(0, 300), V),
    output: ids(rng, rng.int(0, 200), V),
    s: { repetition: rng.pick([1, 1.05, 1.3, 0.8]), frequency: rng.pick([0, 0.5, -0.25]), presence: rng.pick([0, 1.5, -0.7]) },
  };
}

describe('PenaltyState (host)', () => {
  it('counts output tokens only, keeps ids distinct, pads an empty list', () => {
    const st = new PenaltyState();
    st.start(3, [5, 5, 9], { frequency: 1 });
    expect(st.distinct(3)).toBe(2);
    st.push(3, 9);
    st.push(3, 9);
    st.push(3, 2);
    expect(st.outputCount(3, 9)).toBe(2);
    expect(st.outputCount(3, 5)).toBe(0);
    const up = st.build([3]);
    expect([...up.offsets]).toEqual([0, 3]);
    expect([...up.tokenIds]).toEqual([5, 9, 2]);
    expect([...up.counts]).toEqual([0, 2, 1]);
    expect([...up.penalty]).toEqual([1, 1, 0]);
    st.start(4, []);
    const two = st.build([4, 3]);
    expect([...two.offsets]).toEqual([0, 0, 3]);
    const empty = st.build([4]);
    expect([...empty.offsets]).toEqual([0, 0]);
    expect(empty.tokenIds.length).toBe(1);
    expect(st.isOff(4)).toBe(true);
    expect(() => st.push(7, 1)).toThrow(PenaltyStateError);
    expect(() => st.start(3, [])).toThrow(PenaltyStateError);
    expect(() => st.push(3, -1)).toThrow(PenaltyStateError);
  });

  it('grows past its initial capacity', () => {
    const st = new PenaltyState();
    const prompt = Array.from({ length: 1000 }, (_, i) => i * 7);
    st.start(0, prompt);
    for (let i = 0; i < 500; i++) st.push(0, i);
    expect(st.distinct(0)).toBe(new Set([...prompt, ...Array.from({ length: 500 }, (_, i) => i)]).size);
    expect(st.outputCount(0, 7)).toBe(1);
  });

  it('rejects bad settings', () => {
    expect(() => validatePenalties({ repetition: 0, frequency: 0, presence: 0 })).toThrow(SamplingError);
    expect(() => validatePenalties({ repetition: 1, frequency: Number.NaN, presence: 0 })).toThrow(SamplingError);
    expect(() => new PenaltyState().start(0, [], { presence: Number.POSITIVE_INFINITY })).toThrow(SamplingError);
  });
});

describe.skipIf(!ctx)('sample/penalties', () => {
  async function check(rows: Row[], V: number, logits: Float32Array, what: string): Promise<void> {
    const c = ctx!;
    const st = new PenaltyState();
    rows.forEach((r, i) => {
      st.start(100 + i, r.prompt, r.s);
      for (const t of r.output) st.push(100 + i, t);
    });
    const lt = c.upload(logits, [rows.length, V], 'f32', 'logits');
    applyPenalties(
      c,
      lt,
      st,
      rows.map((_, i) => 100 + i),
    );
    const got = await c.readF32(lt);
    lt.release();
    const want = new Float32Array(rows.length * V);
    rows.forEach((r, i) => {
      want.set(penaltiesRef(logits.subarray(i * V, (i + 1) * V), r.prompt, r.output, r.s), i * V);
    });
    expectClose(got, want, F32_TOL, what);
  }

  it('matches the reference on random rows (odd V, several rows, empty rows)', async () => {
    const rng = new Rng(1234);
    for (const [rows, V] of [
      [1, 1000],
      [3, 517],
      [5, 77],
      [1, 151936],
    ] as const) {
      const rs = Array.from({ length: rows }, () => randomRow(rng, V));
      if (rows > 1) rs[1] = { prompt: [], output: [], s: rs[1].s }; // an empty row between others
      const logits = rng.normals(rows * V, 3);
      await check(rs, V, logits, `rows=${rows} V=${V}`);
    }
  });

  it('applies each penalty as vLLM does (exact small case)', async () => {
    const V = 6;
    const logits = new Float32Array([2, -2, 0, 4, -1, 3]);
    const row: Row = { prompt: [0, 1, 2], output: [3, 3, 1], s: { repetition: 2, frequency: 0.5, presence: 1 } };
    await check([row], V, logits, 'small');
    const want = penaltiesRef(logits, row.prompt, row.output, row.s);
    // 0: prompt only → 2/2; 1: -2·2 − 0.5 − 1; 2: 0·2; 3: 4/2 − 1 − 1; 4, 5 untouched.
    expect([...want]).toEqual([1, -5.5, 0, 0, -1, 3]);
  });

  it('leaves rows with no penalties, and ids ≥ V, untouched', async () => {
    const c = ctx!;
    const V = 33;
    const logits = new Rng(7).normals(2 * V);
    const lt = c.upload(logits, [2, V], 'f32', 'logits');
    const offsets = c.upload(new Uint32Array([0, 2, 4]), [3], 'u32', 'offsets');
    const tokenIds = c.upload(new Uint32Array([3, 40, 5, 6]), [4], 'u32', 'ids');
    const counts = c.upload(new Uint32Array([1, 1, 2, 0]), [4], 'u32', 'counts');
    const penalty = c.upload(new Float32Array([1.5, 1, 1, 1, 0, 0]), [2, 3], 'f32', 'penalty');
    c.run(penalties(c, { logits: lt, offsets, tokenIds, counts, penalty }));
    const got = await c.readF32(lt);
    const want = Float32Array.from(logits);
    want.set(penaltiesRef(logits.subarray(0, V), [], [3], { repetition: 1.5, frequency: 1, presence: 1 }), 0);
    expectClose(got, want, F32_TOL, 'off row / out-of-range id');
    expect(() => penalties(c, { logits: lt, offsets: tokenIds, tokenIds, counts, penalty })).toThrow(ShapeError);
    for (const t of [lt, offsets, tokenIds, counts, penalty]) t.release();
  });

  it('skips the dispatch when every row is off', async () => {
    const c = ctx!;
    const st = new PenaltyState();
    st.start(0, [1, 2, 3]);
    const logits = new Float32Array([1, 2, 3, 4, 5]);
    const lt = c.upload(logits, [1, 5], 'f32', 'logits');
    applyPenalties(c, lt, st, [0]);
    expect([...(await c.readF32(lt))]).toEqual([...logits]);
    lt.release();
  });
});
