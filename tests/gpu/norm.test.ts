import { describe, expect, it } from 'vitest';
import { ShapeError, UnsupportedAdapterError } from '../../shared/errors.ts';
import { roundToF16, toF16Array } from '../../shared/gpu/f16.ts';
import type { Tensor } from '../../shared/gpu/tensor.ts';
import { layerNorm, layerNormCall, rmsNorm, rmsNormCall } from '../../shared/kernels/norm/index.ts';
import { layerNormRef, rmsNormRef } from '../../shared/reference/norm.ts';
import { expectClose, F32_TOL } from '../support/close.ts';
import { testContext } from '../support/gpu.ts';
import { Rng } from '../support/random.ts';

const ctx = await testContext();
const EPS = 1e-6;

/**
 * Rows with very different scales (tiny, unit, large), as hidden states have. A row's mean is
 * `mean·scale`: |mean| ≫ std would test f32 conditioning (x − mean loses digits in torch too),
 * not the kernel.
 */
function rowsOf(rng: Rng, rows: number, ld: number, offset: number, mean = 0): Float32Array {
  const x = new Float32Array(offset + rows * ld);
  for (let r = 0; r < rows; r++) {
    const scale = rng.pick([1e-3, 0.5, 1, 3, 40]);
    for (let c = 0; c < ld; c++) x[offset + r * ld + c] = (mean + rng.normal()) * scale;
  }
  return x;
}

/** Reads rows [rows, n] out of y (offset, stride) into a dense array. */
function denseRows(y: Float32Array, rows: number, n: number, ld: number, offset: number): Float32Array {
  const out = new Float32Array(rows * n);
  for (let r = 0; r < rows; r++) out.set(y.subarray(offset + r * ld, offset + r * ld + n), r * n);
  return out;
}

interface Case {
  rows: number;
  n: number;
  f16: boolean;
  inPlace: boolean;
  ldx?: number;
  xOffset?: number;
  seed: number;
}

/**
 * With f16 weights, the reference uses the same f16-rounded weights, so only the f32 summation
 * order differs from the f64 reference and the f32 tolerance (1e-5 abs + 1e-4 rel) still applies.
 */
async function checkRms(o: Case) {
  const c = ctx!;
  const rng = new Rng(o.seed);
  const ldx = o.ldx ?? o.n;
  const xOffset = o.xOffset ?? 0;
  const x = rowsOf(rng, o.rows, ldx, xOffset);
  let w: Float32Array = rng.normals(o.n, 0.3).map((v) => 1 + v);
  if (o.f16) w = roundToF16(w);
  const xt = c.upload(x, [x.length], 'f32', 'x');
  const wt = c.upload(o.f16 ? toF16Array(w) : w, [o.n], o.f16 ? 'f16' : 'f32', 'w');
  const want = rmsNormRef({ x, weight: w, rows: o.rows, n: o.n, eps: EPS, ldx, xOffset });
  const what = `rmsnorm ${JSON.stringify(o)}`;
  let yt: Tensor;
  let got: Float32Array;
  if (o.inPlace) {
    yt = xt;
    rmsNorm(c, { x: xt, weight: wt, rows: o.rows, n: o.n, eps: EPS, ldx, xOffset });
    const y = await c.readF32(xt);
    got = denseRows(y, o.rows, o.n, ldx, xOffset);
    // The gaps between rows and the prefix are untouched.
    for (let i = 0; i < xOffset; i++) expect(y[i]).toBe(x[i]);
    for (let r = 0; r < o.rows; r++) for (let k = o.n; k < ldx; k++) expect(y[xOffset + r * ldx + k]).toBe(x[xOffset + r * ldx + k]);
  } else {
    const ldy = o.n + 2;
    const yOffset = 3;
    yt = c.zeros([yOffset + o.rows * ldy], 'f32', 'y');
    rmsNorm(c, { x: xt, y: yt, weight: wt, rows: o.rows, n: o.n, eps: EPS, ldx, xOffset, ldy, yOffset });
    const y = await c.readF32(yt);
    got = denseRows(y, o.rows, o.n, ldy, yOffset);
    expect(y[0]).toBe(0);
    expect(Array.from(await c.readF32(xt))).toEqual(Array.from(x)); // input untouched
  }
  expectClose(got, want, F32_TOL, what);
  for (const t of new Set([xt, wt, yt])) t.release();
}

async function checkLayer(o: Case & { mean: number }) {
  const c = ctx!;
  const rng = new Rng(o.seed);
  const ldx = o.ldx ?? o.n;
  const xOffset = o.xOffset ?? 0;
  const x = rowsOf(rng, o.rows, ldx, xOffset, o.mean);
  let w: Float32Array = rng.normals(o.n, 0.3).map((v) => 1 + v);
  let b: Float32Array = rng.normals(o.n, 0.2);
  if (o.f16) {
    w = roundToF16(w);
    b = roundToF16(b);
  }
  const dt = o.f16 ? 'f16' : 'f32';
  const xt = c.upload(x, [x.length], 'f32', 'x');
  const wt = c.upload(o.f16 ? toF16Array(w) : w, [o.n], dt, 'w');
  const bt = c.upload(o.f16 ? toF16Array(b) : b, [o.n], dt, 'b');
  const want = layerNormRef({ x, weight: w, bias: b, rows: o.rows, n: o.n, eps: EPS, ldx, xOffset });
  const what = `layernorm ${JSON.stringify(o)}`;
  let got: Float32Array;
  let yt: Tensor = xt;
  if (o.inPlace) {
    layerNorm(c, { x: xt, y: xt, weight: wt, bias: bt, rows: o.rows, n: o.n, eps: EPS, ldx, xOffset });
    got = denseRows(await c.readF32(xt), o.rows, o.n, ldx, xOffset);
  } else {
    const ldy = o.n + 1;
    const yOffset = 2;
    yt = c.zeros([yOffset + o.rows * ldy], 'f32', 'y');
    layerNorm(c, { x: xt, y: yt, weight: wt, bias: bt, rows: o.rows, n: o.n, eps: EPS, ldx, xOffset, ldy, yOffset });
    got = denseRows(await c.readF32(yt), o.rows, o.n, ldy, yOffset);
  }
  expectClose(got, want, F32_TOL, what);
  for (const t of new Set([xt, wt, bt, yt])) t.release();
}

describe.skipIf(!ctx)('RMSNorm (Qwen3, f32 statistics)', () => {
  const dtypes = () => (ctx!.caps.f16 ? [false, true] : [false]);

  it('random odd shapes and strides, out of place and in place, f32 and f16 weights', async () => {
    const rng = new Rng(1);
    // Row lengths around each workgroup size (64, 128, 256 threads) and not multiples of them.
    const ns = [1, 5, 16, 63, 65, 127, 129, 200, 257, 700, 1025, 2051, rng.int(2, 3000)];
    let seed = 10;
    for (const n of ns) {
      for (const f16 of dtypes()) {
        await checkRms({
          rows: rng.int(1, n > 1000 ? 5 : 17), n, f16, inPlace: seed % 2 === 0,
          ldx: n + rng.int(0, 3), xOffset: rng.int(0, 9), seed: seed++,
        });
      }
    }
  });

  it('Qwen3 hidden size 2048 (and 8192) rows', async () => {
    await checkRms({ rows: 3, n: 2048, f16: false, inPlace: false, seed: 40 });
    await checkRms({ rows: 2, n: 8192, f16: ctx!.caps.f16, inPlace: true, seed: 41 });
  });

  it('per-head q_norm / k_norm: rows = tokens·heads, n = head_dim, in place on q and k', async () => {
    const c = ctx!;
    const rng = new Rng(2);
    const T = 7, H = 4, KV = 2, hd = 128; // small GQA shape with the real head_dim
    const q = rng.normals(T * H * hd, 2);
    const k = rng.normals(T * KV * hd, 0.7);
    let qw: Float32Array = rng.normals(hd, 0.2).map((v) => 1 + v);
    let kw: Float32Array = rng.normals(hd, 0.2).map((v) => 1 + v);
    const f16 = c.caps.f16;
    if (f16) {
      qw = roundToF16(qw);
      kw = roundToF16(kw);
    }
    const dt = f16 ? 'f16' : 'f32';
    const qt = c.upload(q, [T, H * hd], 'f32', 'q');
    const kt = c.upload(k, [T, KV * hd], 'f32', 'k');
    const qwt = c.upload(f16 ? toF16Array(qw) : qw, [hd], dt, 'q_norm');
    const kwt = c.upload(f16 ? toF16Array(kw) : kw, [hd], dt, 'k_norm');
    rmsNorm(c, { x: qt, weight: qwt, rows: T * H, n: hd, eps: EPS });
    rmsNorm(c, { x: kt, weight: kwt, rows: T * KV, n: hd, eps: EPS });
    // Reference: normalise each (token, head) slice separately, as HF does on q.view(T, H, hd).
    const wantQ = new Float32Array(q.length);
    for (let t = 0; t < T; t++) {
      for (let h = 0; h < H; h++) {
        const o = (t * H + h) * hd;
        wantQ.set(rmsNormRef({ x: q.subarray(o, o + hd), weight: qw, rows: 1, n: hd, eps: EPS }), o);
      }
    }
    expectClose(await c.readF32(qt), wantQ, F32_TOL, 'q_norm');
    expectClose(await c.readF32(kt), rmsNormRef({ x: k, weight: kw, rows: T * KV, n: hd, eps: EPS }), F32_TOL, 'k_norm');
    for (const t of [qt, kt, qwt, kwt]) t.release();
  });

  it('more than 65535 rows (split dispatch)', async () => {
    await checkRms({ rows: 65_539, n: 2, f16: false, inPlace: true, seed: 50 });
  });

  it('rejects bad shapes with a ShapeError naming the tensor', () => {
    const c = ctx!;
    const x = c.zeros([4, 8], 'f32', 'hidden');
    const w = c.zeros([7], 'f32', 'norm.weight');
    const w8 = c.zeros([8], 'f32', 'norm.weight8');
    const y = c.zeros([3, 8], 'f32', 'out');
    expect(() => rmsNormCall(c, { x, weight: w, rows: 4, n: 8, eps: EPS })).toThrow(/norm\.weight.*\[8\]/);
    expect(() => rmsNormCall(c, { x, y, weight: w8, rows: 4, n: 8, eps: EPS })).toThrow(/out.*needs 32/);
    expect(() => rmsNormCall(c, { x, weight: w8, rows: 5, n: 8, eps: EPS })).toThrow(ShapeError);
    expect(() => rmsNormCall(c, { x, weight: w8, rows: 2, n: 8, eps: EPS, ldx: 8, ldy: 16 })).toThrow(/in place/);
    expect(() => rmsNormCall(c, { x, weight: w8, rows: 0, n: 8, eps: EPS })).toThrow(ShapeError);
    if (!c.caps.f16) {
      const h = c.zeros([8], 'f16', 'w16');
      expect(() => rmsNormCall(c, { x, weight: h, rows: 4, n: 8, eps: EPS })).toThrow(UnsupportedAdapterError);
    }
  });
});

describe.skipIf(!ctx)('LayerNorm (vision tower, weight + bias, biased variance)', () => {
  const dtypes = () => (ctx!.caps.f16 ? [false, true] : [false]);

  it('random odd shapes and strides, out of place and in place, f32 and f16 weights', async () => {
    const rng = new Rng(3);
    const ns = [1, 2, 31, 64, 100, 255, 333, 1000, 1153, rng.int(2, 2500)];
    let seed = 60;
    for (const n of ns) {
      for (const f16 of dtypes()) {
        await checkLayer({
          rows: rng.int(1, n > 1000 ? 5 : 13), n, f16, inPlace: seed % 2 === 1, mean: rng.pick([0, 0.7, -2]),
          ldx: n + rng.int(0, 2), xOffset: rng.int(0, 5), seed: seed++,
        });
      }
    }
  });

  it('ViT and post-shuffle merger widths (1152, 4·1152)', async () => {
    await checkLayer({ rows: 3, n: 1152, f16: false, inPlace: false, mean: 0.3, seed: 80 });
    await checkLayer({ rows: 2, n: 4608, f16: ctx!.caps.f16, inPlace: true, mean: -1, seed: 81 });
  });

  it('rejects a bias of another dtype or length', () => {
    const c = ctx!;
    const x = c.zeros([2, 6], 'f32', 'x');
    const w = c.zeros([6], 'f32', 'ln.weight');
    expect(() => layerNormCall(c, { x, weight: w, bias: c.zeros([5], 'f32', 'ln.bias'), rows: 2, n: 6, eps: EPS })).toThrow(
      /ln\.bias.*\[6\]/,
    );
    if (c.caps.f16) {
      const b16 = c.zeros([6], 'f16', 'ln.bias16');
      expect(() => layerNormCall(c, { x, weight: w, bias: b16, rows: 2, n: 6, eps: EPS })).toThrow(/dtype f32/);
    }
  });
});
