import { describe, expect, it } from 'vitest';
import { ShapeError } from '../../shared/errors.ts';
import {
  ADD,
  ADD_INPLACE,
  add,
  addCall,
  addInPlace,
  GeluApproximation,
  gelu,
  siluMul,
  siluMulCall,
} from '../../shared/kernels/elementwise/index.ts';
import { addRef, erfcRef, erfRef, geluErfRef, geluTanhRef, siluMulRef } from '../../shared/reference/elementwise.ts';
import { expectClose, F32_TOL, type Tolerance } from '../support/close.ts';
import { testContext } from '../support/gpu.ts';
import { Rng } from '../support/random.ts';

const ctx = await testContext();

/** Values every activation must survive: zeros, the erf split at |x| = √2, clamps, huge values. */
const SPECIALS = [
  0, -0, 1e-30, -1e-30, 1e-7, -1e-7, 0.5, -0.5, 1, -1, Math.SQRT2, -Math.SQRT2, Math.SQRT2 - 1e-6, -(Math.SQRT2 + 1e-6), 2, -2, 3, -3, 5.5, -5.5,
  9.99, -9.99, 10, -10, 10.01, -10.01, 20, -20, 79.9, -79.9, 80.1, -80.1, 1e3, -1e3, 1e4, -1e4, 1e20, -1e20, 3e38, -3e38,
];

function inputs(rng: Rng, n: number, scale: number): Float32Array {
  const x = rng.normals(n, scale);
  x.set(SPECIALS.slice(0, Math.min(n, SPECIALS.length)));
  return x;
}

describe('f64 reference erf', () => {
  it('matches known values of erf and erfc', () => {
    // Values of Python's math.erf / math.erfc (correctly rounded libm).
    const known: [number, number, number][] = [
      [0.1, 0.1124629160182849, 0.8875370839817152],
      [0.5, 0.5204998778130465, 0.4795001221869535],
      [1, 0.8427007929497149, 0.15729920705028513],
      [2, 0.9953222650189527, 0.004677734981047265],
      [2.9, 0.9999589021219005, 4.109787809945886e-5],
      [3, 0.9999779095030014, 2.2090496998585438e-5],
      [3.5, 0.9999992569016276, 7.430983723414128e-7],
      [5, 0.9999999999984626, 1.5374597944280351e-12],
      [8, 1, 1.1224297172982928e-29],
    ];
    for (const [z, e, c] of known) {
      expect(Math.abs(erfRef(z) - e)).toBeLessThan(1e-15);
      expect(Math.abs(erfRef(-z) + e)).toBeLessThan(1e-15);
      expect(Math.abs(erfcRef(z) - c) / c).toBeLessThan(1e-10);
      expect(Math.abs(erfcRef(-z) - (2 - c))).toBeLessThan(1e-15);
    }
  });
});

describe.skipIf(!ctx)('GELU', () => {
  const kinds = [
    [GeluApproximation.Tanh, geluTanhRef],
    [GeluApproximation.None, geluErfRef],
  ] as const;

  for (const [approximate, ref] of kinds) {
    it(`${approximate}: random odd sizes and offsets, out of place and in place, extreme values`, async () => {
      const c = ctx!;
      const rng = new Rng(approximate === GeluApproximation.Tanh ? 1 : 2);
      for (const [i, n] of [1, 255, 257, 1000, 4099, rng.int(2, 20_000)].entries()) {
        const xOffset = rng.int(0, 6);
        const x = new Float32Array(xOffset + n);
        x.set(inputs(rng, n, rng.pick([1, 3, 8])), xOffset);
        const want = ref(x.subarray(xOffset));
        const xt = c.upload(x, [x.length], 'f32', 'x');
        const what = `gelu ${approximate} n=${n}`;
        if (i % 2 === 0) {
          const yOffset = rng.int(0, 6);
          const yt = c.zeros([yOffset + n + 3], 'f32', 'y');
          gelu(c, { x: xt, y: yt, n, xOffset, yOffset }, approximate);
          const y = await c.readF32(yt);
          expectClose(y.subarray(yOffset, yOffset + n), want, F32_TOL, what);
          expect(Array.from(y.subarray(yOffset + n))).toEqual([0, 0, 0]); // nothing past n
          yt.release();
        } else {
          gelu(c, { x: xt, xOffset }, approximate);
          const y = await c.readF32(xt);
          expectClose(y.subarray(xOffset), want, F32_TOL, `${what} in place`);
          expect(Array.from(y.subarray(0, xOffset))).toEqual(Array.from(x.subarray(0, xOffset)));
        }
        xt.release();
      }
    });
  }

  it('erf: dense sweep of [-12, 12] is within 3e-7·max(1, |x|) of the f64 reference', async () => {
    // gelu_erf(x) = x·Φ(x): an erf error δ shows up as 0.5·|x|·δ, plus the f32 rounding of the
    // product (≤ 2⁻²⁴·|x|). 3e-7 (abs) + 3e-7 (rel) therefore bounds |δ| well below 1e-6.
    const c = ctx!;
    const n = 24_001;
    const x = new Float32Array(n);
    for (let i = 0; i < n; i++) x[i] = -12 + (24 * i) / (n - 1);
    const xt = c.upload(x, [n], 'f32', 'x');
    gelu(c, { x: xt }, GeluApproximation.None);
    const tight: Tolerance = { atol: 3e-7, rtol: 3e-7 };
    expectClose(await c.readF32(xt), geluErfRef(x), tight, 'gelu erf sweep');
    xt.release();
  });

  it('more than 65535 workgroups (split dispatch)', async () => {
    const c = ctx!;
    const n = 65_535 * 256 + 1001; // one workgroup row is not enough
    const x = new Float32Array(n);
    for (let i = 0; i < n; i++) x[i] = ((i % 2003) - 1001) / 97;
    const xt = c.upload(x, [n], 'f32', 'x');
    gelu(c, { x: xt }, GeluApproximation.Tanh);
    const y = await c.readF32(xt);
    // Spot-check the tail (which only the second workgroup row covers) and a stride of the rest.
    const idx: number[] = [];
    for (let i = 0; i < n; i += 4093) idx.push(i);
    for (let i = n - 300_000; i < n; i++) idx.push(i);
    const got = Float32Array.from(idx, (i) => y[i]);
    expectClose(got, geluTanhRef(Float32Array.from(idx, (i) => x[i])), F32_TOL, 'gelu split dispatch');
    xt.release();
  });
});

describe.skipIf(!ctx)('SwiGLU silu(gate)·up', () => {
  it('random odd sizes with offsets, extreme gates', async () => {
    const c = ctx!;
    const rng = new Rng(3);
    for (const n of [1, 3, 256, 999, 6147, rng.int(2, 30_000)]) {
      const go = rng.int(0, 5), uo = rng.int(0, 5), oo = rng.int(0, 5);
      const g = new Float32Array(go + n);
      g.set(inputs(rng, n, 4), go);
      const u = new Float32Array(uo + n);
      u.set(rng.normals(n, 2), uo);
      const gt = c.upload(g, [g.length], 'f32', 'gate');
      const ut = c.upload(u, [u.length], 'f32', 'up');
      const ot = c.zeros([oo + n], 'f32', 'out');
      siluMul(c, { gate: gt, up: ut, out: ot, n, gateOffset: go, upOffset: uo, outOffset: oo });
      const want = siluMulRef(g.subarray(go), u.subarray(uo));
      expectClose((await c.readF32(ot)).subarray(oo), want, F32_TOL, `silu-mul n=${n}`);
      for (const t of [gt, ut, ot]) t.release();
    }
  });

  it('rejects an out that aliases gate or up, and short tensors', () => {
    const c = ctx!;
    const g = c.zeros([10], 'f32', 'gate');
    const u = c.zeros([10], 'f32', 'up');
    expect(() => siluMulCall(c, { gate: g, up: u, out: g })).toThrow(/must not share/);
    expect(() => siluMulCall(c, { gate: g, up: u, out: c.zeros([9], 'f32', 'act') })).toThrow(/act.*needs 10/);
    expect(() => siluMulCall(c, { gate: g, up: u, out: c.zeros([10], 'f32', 'o'), upOffset: 1 })).toThrow(ShapeError);
  });
});

describe.skipIf(!ctx)('residual add', () => {
  it('out = a + b and a += b, random odd sizes with offsets', async () => {
    const c = ctx!;
    const rng = new Rng(4);
    for (const [i, n] of [1, 7, 256, 2049, 10_001, rng.int(2, 30_000)].entries()) {
      const ao = rng.int(0, 5), bo = rng.int(0, 5);
      const a = rng.normals(ao + n, 3);
      const b = rng.normals(bo + n, 0.5);
      const want = addRef(a.subarray(ao), b.subarray(bo));
      const at = c.upload(a, [a.length], 'f32', 'a');
      const bt = c.upload(b, [b.length], 'f32', 'b');
      if (i % 2 === 0) {
        const oo = rng.int(0, 5);
        const ot = c.zeros([oo + n], 'f32', 'out');
        const call = addCall(c, { a: at, b: bt, out: ot, n, aOffset: ao, bOffset: bo, outOffset: oo });
        expect(call.info.name).toBe(ADD);
        c.run(call);
        expectClose((await c.readF32(ot)).subarray(oo), want, F32_TOL, `add n=${n}`);
        ot.release();
      } else {
        addInPlace(c, { a: at, b: bt, n, aOffset: ao, bOffset: bo });
        const got = await c.readF32(at);
        expectClose(got.subarray(ao), want, F32_TOL, `add in place n=${n}`);
        expect(Array.from(got.subarray(0, ao))).toEqual(Array.from(a.subarray(0, ao)));
      }
      for (const t of [at, bt]) t.release();
    }
  });

  it('out = a or out = b picks the in-place kernel', async () => {
    const c = ctx!;
    const rng = new Rng(5);
    const a = rng.normals(300);
    const b = rng.normals(300);
    const at = c.upload(a, [300], 'f32', 'a');
    const bt = c.upload(b, [300], 'f32', 'b');
    expect(addCall(c, { a: at, b: bt, out: at }).info.name).toBe(ADD_INPLACE);
    expect(addCall(c, { a: at, b: bt }).info.name).toBe(ADD_INPLACE);
    add(c, { a: at, b: bt, out: bt }); // b += a
    expectClose(await c.readF32(bt), addRef(a, b), F32_TOL, 'b += a');
    expect(Array.from(await c.readF32(at))).toEqual(Array.from(a));
    expect(() => addCall(c, { a: at, b: at })).toThrow(/share one buffer/);
    expect(() => addCall(c, { a: at, b: bt, out: at, outOffset: 1, n: 10 })).toThrow(/in place/);
    for (const t of [at, bt]) t.release();
  });
});
