import { describe, expect, it } from 'vitest';
import { ShapeError } from '../../shared/errors.ts';
import { roundToF16, toF16Array } from '../../shared/gpu/f16.ts';
import type { GpuContext } from '../../shared/gpu/context.ts';
import type { DType } from '../../shared/gpu/dtype.ts';
import type { Tensor } from '../../shared/gpu/tensor.ts';
import { type DecodePagedArgs, decodeChunk, decodePaged, decodeSubgroup, decodeSubgroupSupported, flashPrefill, prefillPaged } from '../../shared/kernels/attention/index.ts';
import { appendPaged, NO_SEQ } from '../../shared/kernels/kv/index.ts';
import { causalAttentionRef, pagedDecodeRef, pagedPrefillRef } from '../../shared/reference/attention.ts';
import { appendPagedRef, type PagedLayout, pagedSlot } from '../../shared/reference/kv.ts';
import { expectClose, type Tolerance } from '../support/close.ts';
import { testContext } from '../support/gpu.ts';
import { Rng } from '../support/random.ts';

const ctx = await testContext();

/**
 * Attention tolerance: 1e-4 abs + 1e-4 rel, as in attention.test.ts. The online softmax rescales
 * the f32 running sum and accumulator by exp(m_old − m_new) once per key chunk, and f32 `exp`
 * differs from the f64 reference by a few ulps at each step; outputs near 0 keep that error as an
 * absolute one. f16 caches: the reference reads the same f16-rounded K/V, so only f32 arithmetic
 * differs and the same tolerance holds.
 */
const ATTN_TOL: Tolerance = { atol: 1e-4, rtol: 1e-4 };
/** f32 → f16 conversion in the kernel may round either way (WGSL): one f16 ulp is 2^-10 relative. */
const F16_STORE_TOL: Tolerance = { atol: 1e-7, rtol: 2 ** -10 };

/** An f32 cache stores the f32 inputs bit for bit. */
const EXACT: Tolerance = { atol: 0, rtol: 0 };

/** The cache dtypes this adapter can test. */
const cacheDtypes = (): DType[] => (ctx?.caps.f16 ? ['f32', 'f16'] : ['f32']);

/**
 * Block tables built by hand: the blocks of all sequences are a shuffled permutation of
 * 0 .. numBlocks−1 (so no sequence's blocks are contiguous or ordered); unused entries hold 0,
 * as the block manager's `tableArray` pads them. `spare` blocks belong to no sequence.
 */
function shuffledTables(rng: Rng, lens: readonly number[], blockSize: number, spare: number) {
  const need = lens.map((n) => Math.ceil(n / blockSize));
  const maxBlocks = Math.max(1, ...need) + 1;
  const numBlocks = need.reduce((a, b) => a + b, 0) + spare;
  const ids = Array.from({ length: numBlocks }, (_, i) => i);
  for (let i = ids.length - 1; i > 0; i--) {
    const j = rng.int(0, i);
    [ids[i], ids[j]] = [ids[j], ids[i]];
  }
  const tables = new Uint32Array(lens.length * maxBlocks);
  let next = 0;
  lens.forEach((_, s) => {
    for (let b = 0; b < need[s]; b++) tables[s * maxBlocks + b] = ids[next++];
  });
  return { tables, maxBlocks, numBlocks };
}

interface Cache {
  k: Float32Array; // host copy (f16-rounded when dtype is f16)
  v: Float32Array;
  kt: Tensor;
  vt: Tensor;
}

/** A cache filled with random values everywhere (slots of other sequences are noise). */
function randomCache(rng: Rng, L: PagedLayout, dtype: DType): Cache {
  const n = L.numBlocks * L.blockSize * L.Hkv * L.headDim;
  const shape = [L.numBlocks, L.blockSize, L.Hkv, L.headDim];
  let k = rng.normals(n);
  let v = rng.normals(n);
  if (dtype === 'f16') {
    k = roundToF16(k);
    v = roundToF16(v);
  }
  const up = (x: Float32Array, label: string) => ctx!.upload(dtype === 'f16' ? toF16Array(x) : x, shape, dtype, label);
  return { k, v, kt: up(k, 'kCache'), vt: up(v, 'vCache') };
}

describe.skipIf(!ctx)('kv/append-paged', () => {
  it('writes tokens of several sequences to their slots (shuffled blocks), skips padding and out-of-table tokens', async () => {
    const c = ctx!;
    for (const dtype of cacheDtypes()) {
      for (const [blockSize, Hkv, headDim] of [
        [4, 2, 16],
        [16, 8, 128],
        [5, 1, 72],
      ]) {
        const rng = new Rng(blockSize * 100 + headDim);
        const lens = [rng.int(1, 40), rng.int(1, 9), 1, rng.int(10, 50)];
        const { tables, maxBlocks, numBlocks } = shuffledTables(rng, lens, blockSize, 3);
        const L: PagedLayout = { numBlocks, blockSize, Hkv, headDim, maxBlocks };
        const cache = randomCache(rng, L, dtype);
        // Tokens: random positions of random sequences, each slot at most once, in random order,
        // plus a padding token (NO_SEQ) and one past its table.
        const seqIds: number[] = [];
        const positions: number[] = [];
        const used = new Set<string>();
        for (let i = 0; i < 37; i++) {
          const s = rng.int(0, lens.length - 1);
          const p = rng.int(0, lens[s] - 1);
          if (used.has(`${s}:${p}`)) continue;
          used.add(`${s}:${p}`);
          seqIds.push(s);
          positions.push(p);
        }
        seqIds.push(NO_SEQ, 0);
        positions.push(0, maxBlocks * blockSize + 3);
        const T = seqIds.length;
        const kNew = rng.normals(T * Hkv * headDim);
        const vNew = rng.normals(T * Hkv * headDim);
        const kNt = c.upload(kNew, [T, Hkv, headDim], 'f32', 'kNew');
        const vNt = c.upload(vNew, [T, Hkv, headDim], 'f32', 'vNew');
        const seqT = c.upload(new Uint32Array(seqIds), [T], 'u32', 'seqIds');
        const posT = c.upload(new Uint32Array(positions), [T], 'u32', 'positions');
        const tabT = c.upload(tables, [lens.length, maxBlocks], 'u32', 'blockTables');
        c.run(appendPaged(c, { kNew: kNt, vNew: vNt, seqIds: seqT, positions: posT, blockTables: tabT, kCache: cache.kt, vCache: cache.vt }));
        const common = { seqIds: new Uint32Array(seqIds), positions: new Uint32Array(positions), blockTables: tables, numSeqs: lens.length, layout: L };
        const wantK = appendPagedRef({ ...common, cache: cache.k, xNew: kNew });
        const wantV = appendPagedRef({ ...common, cache: cache.v, xNew: vNew });
        const what = `append ${dtype} bs=${blockSize} Hkv=${Hkv} hd=${headDim}`;
        if (dtype === 'f32') {
          expectClose(await c.readF32(cache.kt), wantK, EXACT, `${what} k`);
          expectClose(await c.readF32(cache.vt), wantV, EXACT, `${what} v`);
        } else {
          expectClose(await c.readF32(cache.kt), wantK, F16_STORE_TOL, `${what} k`);
          expectClose(await c.readF32(cache.vt), wantV, F16_STORE_TOL, `${what} v`);
        }
        for (const t of [kNt, vNt, seqT, posT, tabT, cache.kt, cache.vt]) t.release();
      }
    }
  });

  it('slot arithmetic of the reference follows the header diagram', () => {
    const L: PagedLayout = { numBlocks: 4, blockSize: 16, Hkv: 1, headDim: 1, maxBlocks: 2 };
    const tables = new Uint32Array([2, 0, 3, 1]);
    expect(pagedSlot(tables, L, 1, 21)).toBe(21);
    expect(pagedSlot(tables, L, 0, 3)).toBe(35);
    expect(pagedSlot(tables, L, 0, 32)).toBe(-1);
  });

  it('rejects mismatched shapes', () => {
    const c = ctx!;
    const cacheT = c.empty([4, 16, 2, 16], 'f32', 'cache');
    const u = (n: number) => c.empty([n], 'u32', 'u');
    const kNew = c.empty([3, 2, 8], 'f32', 'kNew');
    const tables = c.empty([2, 4], 'u32', 'tables');
    expect(() =>
      appendPaged(c, { kNew, vNew: kNew, seqIds: u(3), positions: u(3), blockTables: tables, kCache: cacheT, vCache: cacheT }),
    ).toThrow(ShapeError);
  });
});

interface DecodeCase {
  lens: number[];
  Hq: number;
  Hkv: number;
  hd: number;
  blockSize: number;
  qStd?: number;
}

type DecodeKernel = (c: GpuContext, args: DecodePagedArgs) => ReturnType<typeof decodePaged>;

async function checkDecode(o: DecodeCase, dtype: DType, seed: number, kernel: DecodeKernel = decodePaged, name = 'decode-paged') {
  const c = ctx!;
  const rng = new Rng(seed);
  const { tables, maxBlocks, numBlocks } = shuffledTables(rng, o.lens, o.blockSize, 2);
  const L: PagedLayout = { numBlocks, blockSize: o.blockSize, Hkv: o.Hkv, headDim: o.hd, maxBlocks };
  const cache = randomCache(rng, L, dtype);
  const n = o.lens.length;
  const q = rng.normals(n * o.Hq * o.hd, o.qStd ?? 1);
  const qt = c.upload(q, [n, o.Hq, o.hd], 'f32', 'q');
  const lensT = c.upload(new Uint32Array(o.lens), [n], 'u32', 'contextLens');
  const tabT = c.upload(tables, [n, maxBlocks], 'u32', 'blockTables');
  const out = c.empty([n, o.Hq, o.hd], 'f32', 'out');
  c.run(kernel(c, { q: qt, contextLens: lensT, blockTables: tabT, kCache: cache.kt, vCache: cache.vt, out }));
  const got = await c.readF32(out);
  const want = pagedDecodeRef({ q, contextLens: o.lens, Hq: o.Hq, kCache: cache.k, vCache: cache.v, blockTables: tables, layout: L });
  expectClose(got, want, ATTN_TOL, `${name} ${dtype} ${JSON.stringify(o)}`);
  for (const t of [qt, lensT, tabT, out, cache.kt, cache.vt]) t.release();
  return { got, n, Hq: o.Hq, hd: o.hd };
}

const DECODE_CASES: DecodeCase[] = [
  { lens: [1, 17, 33, 5], Hq: 4, Hkv: 2, hd: 16, blockSize: 4, qStd: 3 },
  { lens: [200, 0, 31], Hq: 2, Hkv: 2, hd: 16, blockSize: 16 },
  { lens: [97, 1, 64, 150], Hq: 32, Hkv: 8, hd: 128, blockSize: 16, qStd: 2 },
  { lens: [40, 77], Hq: 16, Hkv: 8, hd: 128, blockSize: 5 },
];

describe.skipIf(!ctx)('attention/decode-paged', () => {
  it('chunk sizes fit the 16 KiB budget for the model shapes', () => {
    expect(decodeChunk('test', ctx!, 128, 4)).toBe(16);
    expect(decodeChunk('test', ctx!, 16, 2)).toBe(32);
  });

  it('several sequences of different lengths in one dispatch, GQA 1/2/4, shuffled blocks', async () => {
    for (const dtype of cacheDtypes()) {
      for (const [i, o] of DECODE_CASES.entries()) await checkDecode(o, dtype, 30 + i);
    }
  });

  it('random batches', async () => {
    const rng = new Rng(31);
    for (let i = 0; i < 3; i++) {
      const Hkv = rng.pick([1, 2]);
      const lens = Array.from({ length: rng.int(1, 5) }, () => rng.int(0, 120));
      await checkDecode({ lens, Hq: Hkv * rng.pick([1, 2, 4]), Hkv, hd: 16, blockSize: rng.pick([3, 8, 16]), qStd: 2 }, 'f32', 300 + i);
    }
  });
});

describe.skipIf(!ctx || !decodeSubgroupSupported(ctx, 16))('attention/decode-subgroup (one subgroup per head, no workgroup memory)', () => {
  const subgroup: DecodeKernel = (c, a) => decodeSubgroup(c, a);

  it('the decode-paged cases: lengths 0 to 200 in one dispatch, GQA 1/2/4, shuffled blocks', async () => {
    for (const dtype of cacheDtypes()) {
      for (const [i, o] of DECODE_CASES.entries()) await checkDecode(o, dtype, 30 + i, subgroup, 'decode-subgroup');
    }
  });

  it('random batches, and a sequence gives the same bits alone and in a batch', async () => {
    const rng = new Rng(32);
    for (let i = 0; i < 3; i++) {
      const Hkv = rng.pick([1, 2]);
      const lens = Array.from({ length: rng.int(1, 5) }, () => rng.int(0, 120));
      await checkDecode({ lens, Hq: Hkv * rng.pick([1, 2, 4]), Hkv, hd: 16, blockSize: rng.pick([3, 8, 16]), qStd: 2 }, 'f32', 400 + i, subgroup, 'decode-subgroup');
    }
    // One cache: the first sequence alone, then in a batch of three (the engine relies on it).
    const c = ctx!;
    const lens = [57, 90, 3];
    const { tables, maxBlocks, numBlocks } = shuffledTables(rng, lens, 8, 2);
    const cache = randomCache(rng, { numBlocks, blockSize: 8, Hkv: 2, headDim: 16, maxBlocks }, 'f32');
    const q = rng.normals(3 * 4 * 16, 2);
    const run = async (n: number) => {
      const qt = c.upload(q.subarray(0, n * 64), [n, 4, 16], 'f32', 'q');
      const lensT = c.upload(Uint32Array.from(lens.slice(0, n)), [n], 'u32', 'contextLens');
      const tabT = c.upload(tables.subarray(0, n * maxBlocks), [n, maxBlocks], 'u32', 'blockTables');
      const out = c.empty([n, 4, 16], 'f32', 'out');
      c.run(decodeSubgroup(c, { q: qt, contextLens: lensT, blockTables: tabT, kCache: cache.kt, vCache: cache.vt, out }));
      const got = await c.readF32(out);
      for (const t of [qt, lensT, tabT, out]) t.release();
      return Array.from(got.subarray(0, 64));
    };
    expect(await run(3)).toEqual(await run(1));
    cache.kt.release();
    cache.vt.release();
  });

  it('rejects a head_dim that the subgroup size does not divide', () => {
    const c = ctx!;
    const sg = c.caps.subgroupMinSize;
    const hd = sg + 2;
    const q = c.empty([1, 2, hd], 'f32', 'q');
    const cache = c.empty([2, 4, 1, hd], 'f32', 'cache');
    const lens = c.empty([1], 'u32', 'lens');
    const tab = c.empty([1, 2], 'u32', 'tab');
    expect(() => decodeSubgroup(c, { q, contextLens: lens, blockTables: tab, kCache: cache, vCache: cache, out: q })).toThrow(ShapeError);
    for (const t of [q, cache, lens, tab]) t.release();
  });
});

async function checkPrefillPaged(o: { T: number; start: number; Hq: number; Hkv: number; hd: number; blockSize: number }, dtype: DType, seed: number) {
  const c = ctx!;
  const rng = new Rng(seed);
  // Three sequences; the chunk belongs to row 1, the others only own blocks.
  const lens = [rng.int(1, 30), o.start + o.T, rng.int(1, 30)];
  const { tables, maxBlocks, numBlocks } = shuffledTables(rng, lens, o.blockSize, 2);
  const L: PagedLayout = { numBlocks, blockSize: o.blockSize, Hkv: o.Hkv, headDim: o.hd, maxBlocks };
  const cache = randomCache(rng, L, dtype);
  const q = rng.normals(o.T * o.Hq * o.hd, 2);
  const qt = c.upload(q, [o.T, o.Hq, o.hd], 'f32', 'q');
  const tabT = c.upload(tables, [lens.length, maxBlocks], 'u32', 'blockTables');
  const out = c.empty([o.T, o.Hq, o.hd], 'f32', 'out');
  c.run(prefillPaged(c, { q: qt, blockTables: tabT, seq: 1, start: o.start, kCache: cache.kt, vCache: cache.vt, out }));
  const got = await c.readF32(out);
  const want = pagedPrefillRef({ q, T: o.T, Hq: o.Hq, seq: 1, start: o.start, kCache: cache.k, vCache: cache.v, blockTables: tables, layout: L });
  expectClose(got, want, ATTN_TOL, `prefill-paged ${dtype} ${JSON.stringify(o)}`);
  for (const t of [qt, tabT, out, cache.kt, cache.vt]) t.release();
}

describe.skipIf(!ctx)('attention/prefill-paged (chunked prefill)', () => {
  it('chunks of T 1/7/33 after cached prefixes, GQA 1/2/4', async () => {
    const cases = [
      { T: 1, start: 0, Hq: 4, Hkv: 2, hd: 16, blockSize: 4 },
      { T: 7, start: 5, Hq: 2, Hkv: 2, hd: 16, blockSize: 16 },
      { T: 33, start: 40, Hq: 4, Hkv: 1, hd: 16, blockSize: 5 },
      { T: 33, start: 100, Hq: 32, Hkv: 8, hd: 128, blockSize: 16 },
      { T: 7, start: 0, Hq: 16, Hkv: 8, hd: 128, blockSize: 16 },
    ];
    for (const dtype of cacheDtypes()) {
      for (const [i, o] of cases.entries()) await checkPrefillPaged(o, dtype, 40 + i);
    }
  });

  it('rejects a chunk past the table and a missing sequence row', () => {
    const c = ctx!;
    const cacheT = c.empty([4, 4, 1, 16], 'f32', 'cache');
    const q = c.empty([5, 2, 16], 'f32', 'q');
    const tables = c.empty([2, 3], 'u32', 'tables');
    const args = { q, blockTables: tables, kCache: cacheT, vCache: cacheT, out: q };
    expect(() => prefillPaged(c, { ...args, seq: 0, start: 8 })).toThrow(/need 4 blocks/);
    expect(() => prefillPaged(c, { ...args, seq: 2, start: 0 })).toThrow(ShapeError);
  });
});

describe.skipIf(!ctx)('append + paged attention = flash-prefill', () => {
  it('chunked append + prefill-paged, then append + decode-paged, match flash-prefill on the whole prompt', async () => {
    const c = ctx!;
    for (const dtype of cacheDtypes()) {
      const rng = new Rng(50);
      const Hq = 4, Hkv = 2, hd = 16, blockSize = 4;
      const promptLens = [19, 6, 45]; // each sequence: prompt of n tokens, then 1 decode token
      const lens = promptLens.map((n) => n + 1);
      const { tables, maxBlocks, numBlocks } = shuffledTables(rng, lens, blockSize, 1);
      const n = lens.length;
      const cacheShape = [numBlocks, blockSize, Hkv, hd];
      const zeros = dtype === 'f16' ? new Uint16Array(numBlocks * blockSize * Hkv * hd) : new Float32Array(numBlocks * blockSize * Hkv * hd);
      const kCache = c.upload(zeros, cacheShape, dtype, 'kCache');
      const vCache = c.upload(zeros, cacheShape, dtype, 'vCache');
      const tabT = c.upload(tables, [n, maxBlocks], 'u32', 'blockTables');
      // The full sequences (prompt + decode token); an f16 cache sees f16-rounded K/V.
      const seqs = lens.map((S) => ({
        q: rng.normals(S * Hq * hd, 2),
        k: rng.normals(S * Hkv * hd),
        v: rng.normals(S * Hkv * hd),
      }));
      const round = (x: Float32Array) => (dtype === 'f16' ? roundToF16(x) : x);
      const append = (s: number, from: number, to: number) => {
        const T = to - from;
        const row = Hkv * hd;
        const kNew = c.upload(seqs[s].k.slice(from * row, to * row), [T, Hkv, hd], 'f32', 'kNew');
        const vNew = c.upload(seqs[s].v.slice(from * row, to * row), [T, Hkv, hd], 'f32', 'vNew');
        const seqIds = c.upload(new Uint32Array(T).fill(s), [T], 'u32', 'seqIds');
        const positions = c.upload(Uint32Array.from({ length: T }, (_, i) => from + i), [T], 'u32', 'positions');
        c.run(appendPaged(c, { kNew, vNew, seqIds, positions, blockTables: tabT, kCache, vCache }));
        return [kNew, vNew, seqIds, positions];
      };
      const temps: Tensor[] = [];
      // Prefill every prompt in two chunks through the cache; compare with flash-prefill of the prompt.
      for (let s = 0; s < n; s++) {
        const P = promptLens[s];
        const { q, k, v } = seqs[s];
        const qRow = Hq * hd;
        const kRow = Hkv * hd;
        const split = Math.floor(P / 2);
        const outPaged = new Float32Array(P * qRow);
        for (const [from, to] of [
          [0, split],
          [split, P],
        ]) {
          if (to === from) continue;
          temps.push(...append(s, from, to));
          const qt = c.upload(q.slice(from * qRow, to * qRow), [to - from, Hq, hd], 'f32', 'q');
          const out = c.empty([to - from, Hq, hd], 'f32', 'out');
          c.run(prefillPaged(c, { q: qt, blockTables: tabT, seq: s, start: from, kCache, vCache, out }));
          outPaged.set(await c.readF32(out), from * qRow);
          temps.push(qt, out);
        }
        const qt = c.upload(q.slice(0, P * qRow), [P, Hq, hd], 'f32', 'q');
        const kt = c.upload(round(k.slice(0, P * kRow)), [P, Hkv, hd], 'f32', 'k');
        const vt = c.upload(round(v.slice(0, P * kRow)), [P, Hkv, hd], 'f32', 'v');
        const out = c.empty([P, Hq, hd], 'f32', 'out');
        c.run(flashPrefill(c, { q: qt, k: kt, v: vt, out }));
        const flash = await c.readF32(out);
        expectClose(outPaged, flash, ATTN_TOL, `${dtype} seq ${s}: chunked prefill-paged vs flash-prefill`);
        temps.push(qt, kt, vt, out);
      }
      // One decode step for all sequences at once: append the new token, then decode-paged.
      const row = Hkv * hd;
      const qRow = Hq * hd;
      const kNew = new Float32Array(n * row);
      const vNew = new Float32Array(n * row);
      const qDec = new Float32Array(n * qRow);
      for (let s = 0; s < n; s++) {
        const p = promptLens[s];
        kNew.set(seqs[s].k.subarray(p * row, (p + 1) * row), s * row);
        vNew.set(seqs[s].v.subarray(p * row, (p + 1) * row), s * row);
        qDec.set(seqs[s].q.subarray(p * qRow, (p + 1) * qRow), s * qRow);
      }
      const kNt = c.upload(kNew, [n, Hkv, hd], 'f32', 'kNew');
      const vNt = c.upload(vNew, [n, Hkv, hd], 'f32', 'vNew');
      const seqIds = c.upload(Uint32Array.from({ length: n }, (_, s) => s), [n], 'u32', 'seqIds');
      const positions = c.upload(new Uint32Array(promptLens), [n], 'u32', 'positions');
      const ctxLens = c.upload(new Uint32Array(lens), [n], 'u32', 'contextLens');
      const qt = c.upload(qDec, [n, Hq, hd], 'f32', 'q');
      const out = c.empty([n, Hq, hd], 'f32', 'out');
      c.run(appendPaged(c, { kNew: kNt, vNew: vNt, seqIds, positions, blockTables: tabT, kCache, vCache }));
      c.run(decodePaged(c, { q: qt, contextLens: ctxLens, blockTables: tabT, kCache, vCache, out }));
      const got = await c.readF32(out);
      temps.push(kNt, vNt, seqIds, positions, ctxLens, qt, out);
      for (let s = 0; s < n; s++) {
        const S = lens[s];
        const { q, k, v } = seqs[s];
        // flash-prefill over the whole sequence: its last row is the decode token.
        const qtS = c.upload(q, [S, Hq, hd], 'f32', 'q');
        const ktS = c.upload(round(k), [S, Hkv, hd], 'f32', 'k');
        const vtS = c.upload(round(v), [S, Hkv, hd], 'f32', 'v');
        const outS = c.empty([S, Hq, hd], 'f32', 'out');
        c.run(flashPrefill(c, { q: qtS, k: ktS, v: vtS, out: outS }));
        const lastRow = await c.readF32(outS.view((S - 1) * qRow, qRow));
        const mine = got.subarray(s * qRow, (s + 1) * qRow);
        expectClose(mine, lastRow, ATTN_TOL, `${dtype} seq ${s}: decode-paged vs flash-prefill last row`);
        const ref = causalAttentionRef({ q: q.subarray((S - 1) * qRow), k: round(k), v: round(v), T: 1, S, Hq, Hkv, headDim: hd });
        expectClose(mine, ref, ATTN_TOL, `${dtype} seq ${s}: decode-paged vs reference`);
        temps.push(qtS, ktS, vtS, outS);
      }
      for (const t of [...temps, kCache, vCache, tabT]) t.release();
    }
  });
});
