import { describe, expect, it } from 'vitest';
import { roundToF16, toF16Array } from '../../shared/gpu/f16.ts';
import { linear } from '../../shared/kernels/linear/index.ts';
import { mergeGather, type PatchGrid, posEmbedInterp, posEmbedInterpCalls } from '../../shared/kernels/vision/index.ts';
import {
  conv3dPatchRef,
  linspaceF32,
  mergeGatherRef,
  type PatchConvShape,
  patchifyRef,
  posEmbedInterpRef,
} from '../../shared/reference/vision.ts';
import { ShapeError } from '../../shared/errors.ts';
import { expectClose, F32_TOL } from '../support/close.ts';
import { testContext } from '../support/gpu.ts';
import { Rng } from '../support/random.ts';

const ctx = await testContext();

describe('vision references (host only)', () => {
  it('linspaceF32 is corner-aligned and exact at both ends', () => {
    for (const [end, n] of [[47, 16], [47, 20], [7, 6], [47, 142], [7, 2]] as const) {
      const v = linspaceF32(0, end, n);
      expect(v[0]).toBe(0);
      expect(v[n - 1]).toBe(end);
      for (let i = 1; i < n; i++) expect(v[i]).toBeGreaterThan(v[i - 1]);
    }
    expect(Array.from(linspaceF32(0, 7, 1))).toEqual([0]);
    // G-1 = 47 onto 48 points: every index is an integer (step exactly 1).
    expect(Array.from(linspaceF32(0, 47, 48))).toEqual(Array.from({ length: 48 }, (_, i) => i));
  });

  it('pos-embed interpolation onto the table grid itself is the table (merge order)', () => {
    const G = 4, D = 3;
    const table = new Rng(9).normals(G * G * D);
    const got = posEmbedInterpRef(table, G, D, { t: 1, h: G, w: G });
    // merge-order row of raster (r, c) for a 4×4 grid with m = 2
    const rowOf = (r: number, c: number) => ((r >> 1) * 2 + (c >> 1)) * 4 + (r & 1) * 2 + (c & 1);
    for (let r = 0; r < G; r++) {
      for (let c = 0; c < G; c++) {
        for (let d = 0; d < D; d++) expect(got[rowOf(r, c) * D + d]).toBe(table[(r * G + c) * D + d]);
      }
    }
  });
});

describe.skipIf(!ctx)('vision kernels', () => {
  const dtypes = () => (ctx!.caps.f16 ? [false, true] : [false]);

  it('patch embedding: linear with the Conv3d weight viewed as [D, 1536] equals a direct Conv3d', async () => {
    const c = ctx!;
    const rng = new Rng(11);
    for (const [D, T, H, W] of [
      [37, 4, 64, 96], // two temporal patches, 4×6 patch grid
      [16, 2, 32, 32], // one 2×2 window
    ] as const) {
      const s: PatchConvShape = { T, C: 3, H, W, kt: 2, ps: 16, D };
      const K = s.C * s.kt * s.ps * s.ps;
      const frames = rng.uniforms(T * s.C * H * W); // normalised pixels in [-1, 1)
      const weight = rng.normals(D * K, 1 / Math.sqrt(K)); // [D, 3, 2, 16, 16]
      const bias = rng.normals(D, 0.1);
      const patches = patchifyRef(frames, s); // [P, 1536], merge-window order
      const P = patches.length / K;
      const xt = c.upload(patches, [P, K], 'f32', 'pixel_values');
      const wt = c.upload(weight, [D, K], 'f32', 'patch_embed.weight as [D, 1536]');
      const bt = c.upload(bias, [D], 'f32', 'patch_embed.bias');
      const yt = c.zeros([P, D], 'f32', 'patch_embed.out');
      linear(c, { x: xt, w: wt, bias: bt, y: yt, M: P, N: D, K });
      const got = await c.readF32(yt);

      // Conv output [D, gt, gh, gw] → rows in merge-window order.
      const conv = conv3dPatchRef(frames, weight, bias, s);
      const gt = T / 2, gh = H / 16, gw = W / 16;
      const want = new Float32Array(P * D);
      let p = 0;
      for (let it = 0; it < gt; it++)
        for (let br = 0; br < gh / 2; br++)
          for (let bc = 0; bc < gw / 2; bc++)
            for (let ir = 0; ir < 2; ir++)
              for (let ic = 0; ic < 2; ic++, p++)
                for (let o = 0; o < D; o++) want[p * D + o] = conv[((o * gt + it) * gh + br * 2 + ir) * gw + bc * 2 + ic];
      expectClose(got, want, F32_TOL, `patch embed D=${D} T=${T} ${H}×${W}`);
      for (const t of [xt, wt, bt, yt]) t.release();
    }
  });

  it('pos-embed interp: random grids, G = 8 and 48, added in place at a row offset', async () => {
    const c = ctx!;
    const rng = new Rng(21);
    const cases: { G: number; D: number; grid: PatchGrid }[] = [
      { G: 8, D: 32, grid: { t: 1, h: 16, w: 20 } }, // the golden tiny model, a 256×320 image
      { G: 8, D: 5, grid: { t: 3, h: 6, w: 10 } },
      { G: 8, D: 7, grid: { t: 1, h: 2, w: 2 } },
      { G: 48, D: 9, grid: { t: 2, h: 22, w: 14 } },
      { G: 48, D: 3, grid: { t: 1, h: 48, w: 96 } }, // h = G: integer sample points
      { G: 48, D: 4, grid: { t: 1, h: 142, w: 2 } }, // step 1/3: sample points near integers
    ];
    for (const { G, D, grid } of cases) {
      for (const f16 of dtypes()) {
        let table = rng.normals(G * G * D);
        if (f16) table = roundToF16(table);
        const rows = grid.t * grid.h * grid.w;
        const rowOffset = rng.int(0, 5);
        const extra = rng.int(0, 3);
        const hidden = rng.normals((rowOffset + rows + extra) * D);
        const tt = c.upload(f16 ? toF16Array(table) : table, [G * G, D], f16 ? 'f16' : 'f32', 'pos_embed');
        const ht = c.upload(hidden, [rowOffset + rows + extra, D], 'f32', 'hidden');
        c.run(posEmbedInterp(c, { table: tt, hidden: ht, grid, rowOffset }));
        const got = await c.readF32(ht);
        const pos = posEmbedInterpRef(table, G, D, grid);
        const want = hidden.slice();
        for (let i = 0; i < pos.length; i++) want[rowOffset * D + i] = Math.fround(want[rowOffset * D + i] + pos[i]);
        expectClose(got, want, F32_TOL, `pos-embed G=${G} D=${D} ${JSON.stringify(grid)} f16=${f16} offset=${rowOffset}`);
        tt.release();
        ht.release();
      }
    }
  });

  it('pos-embed interp: several images concatenated along P (one dispatch each)', async () => {
    const c = ctx!;
    const rng = new Rng(22);
    const G = 8, D = 11;
    const grids: PatchGrid[] = [{ t: 1, h: 4, w: 6 }, { t: 2, h: 8, w: 2 }, { t: 1, h: 10, w: 4 }];
    const rows = grids.reduce((s, g) => s + g.t * g.h * g.w, 0);
    const table = rng.normals(G * G * D);
    const hidden = new Float32Array(rows * D);
    const tt = c.upload(table, [G * G, D], 'f32', 'pos_embed');
    const ht = c.upload(hidden, [rows, D], 'f32', 'hidden');
    const calls = posEmbedInterpCalls(c, { table: tt, hidden: ht, grids });
    expect(calls.length).toBe(3);
    for (const call of calls) c.run(call);
    const want = new Float32Array(rows * D);
    let off = 0;
    for (const g of grids) {
      const pos = posEmbedInterpRef(table, G, D, g);
      want.set(pos, off);
      off += pos.length;
    }
    expectClose(await c.readF32(ht), want, F32_TOL, 'pos-embed, three images');
    tt.release();
    ht.release();
  });

  it('pos-embed interp rejects bad shapes', () => {
    const c = ctx!;
    const tt = c.zeros([63, 4], 'f32', 'not square');
    const ht = c.zeros([16, 4], 'f32', 'hidden');
    expect(() => posEmbedInterp(c, { table: tt, hidden: ht, grid: { t: 1, h: 4, w: 4 } })).toThrow(ShapeError);
    const sq = c.zeros([64, 4], 'f32', 'table');
    expect(() => posEmbedInterp(c, { table: sq, hidden: ht, grid: { t: 1, h: 3, w: 4 } })).toThrow(/merge size/);
    expect(() => posEmbedInterp(c, { table: sq, hidden: ht, grid: { t: 2, h: 4, w: 4 } })).toThrow(/do not fit/);
    for (const t of [tt, ht, sq]) t.release();
  });

  it('merge gather: random grids and odd D, with offsets', async () => {
    const c = ctx!;
    const rng = new Rng(31);
    for (let i = 0; i < 6; i++) {
      const grid = { t: rng.int(1, 3), h: 2 * rng.int(1, 6), w: 2 * rng.int(1, 7) };
      const D = rng.int(1, 40);
      const n = grid.t * grid.h * grid.w * D;
      const xOffset = rng.int(0, 9);
      const yOffset = rng.int(0, 9);
      const x = rng.normals(xOffset + n);
      const xt = c.upload(x, [x.length], 'f32', 'raster');
      const yt = c.zeros([yOffset + n + 2], 'f32', 'windows');
      c.run(mergeGather(c, { x: xt, y: yt, grid, D, xOffset, yOffset }));
      const y = await c.readF32(yt);
      const want = mergeGatherRef(x.subarray(xOffset), grid, D);
      expect(Array.from(y.subarray(yOffset, yOffset + n))).toEqual(Array.from(want));
      expect(y[0] === 0 || yOffset === 0).toBe(true);
      expect(y[yOffset + n]).toBe(0);
      xt.release();
      yt.release();
    }
  });

  it('merge gather of a 2×4 frame puts each window in one row (tl, tr, bl, br)', async () => {
    const c = ctx!;
    // raster [1, 2, 4, 1]: a b e f / c d g h as 0 1 4 5 / 2 3 6 7
    const x = new Float32Array([0, 1, 4, 5, 2, 3, 6, 7]);
    const xt = c.upload(x, [1, 2, 4, 1], 'f32', 'raster');
    const yt = c.zeros([2, 4], 'f32', 'windows');
    c.run(mergeGather(c, { x: xt, y: yt, grid: { t: 1, h: 2, w: 4 }, D: 1 }));
    expect(Array.from(await c.readF32(yt))).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    xt.release();
    yt.release();
  });
});
