import { describe, expect, it } from 'vitest';
import { Rope, RopeMode, ropeTables, visionPatchPositions } from '../../shared/kernels/rope/index.ts';
import { rotaryRef } from '../../shared/reference/rope.ts';
import { expectClose, F32_TOL } from '../support/close.ts';
import { environment, testContext } from '../support/gpu.ts';
import { Rng } from '../support/random.ts';

const ctx = await testContext();

async function check(mode: RopeMode, o: { T: number; H: number; hd: number; theta: number; section?: number[] }, positions: Uint32Array, tol = F32_TOL) {
  const c = ctx!;
  const rng = new Rng(o.T * 31 + o.H);
  const x = rng.normals(o.T * o.H * o.hd);
  const rope = new Rope(c, mode, { headDim: o.hd, theta: o.theta, mropeSection: o.section });
  const xt = c.upload(x, [o.T, o.H, o.hd], 'f32', 'x');
  const pt = c.upload(positions, [rope.axes, o.T], 'u32', 'positions');
  rope.apply(xt, pt);
  const got = await c.readF32(xt);
  const want = rotaryRef(x, o.T, o.H, o.hd, positions, ropeTables(mode, { headDim: o.hd, theta: o.theta, mropeSection: o.section }));
  expectClose(got, want, tol, `${mode} ${JSON.stringify(o)}`);
  rope.release();
  xt.release();
  pt.release();
  return got;
}

describe('rope tables', () => {
  it('interleaved MRoPE follows HF apply_interleaved_mrope', () => {
    // Literal port: freqs_t = freqs[0]; for dim, offset in (1,1),(2,2): idx = slice(offset, section[dim]*3, 3).
    for (const section of [[24, 20, 20], [4, 2, 2], [16, 8, 8]]) {
      const half = section[0] + section[1] + section[2];
      const want = new Array(half).fill(0);
      for (const dim of [1, 2]) for (let j = dim; j < section[dim] * 3; j += 3) want[j] = dim;
      const t = ropeTables(RopeMode.InterleavedMrope, { headDim: 2 * half, theta: 5e6, mropeSection: section });
      expect(Array.from(t.axisOf)).toEqual(want);
    }
  });

  it('vision patch positions follow the merge-window order', () => {
    const p = visionPatchPositions([[1, 2, 4]], 2);
    // windows (0,0),(0,1); each window: (0,0),(0,1),(1,0),(1,1)
    expect(Array.from(p.subarray(0, 8))).toEqual([0, 0, 1, 1, 0, 0, 1, 1]);
    expect(Array.from(p.subarray(8))).toEqual([0, 1, 0, 1, 2, 3, 2, 3]);
  });
});

describe.skipIf(!ctx)(`rotary embeddings (${environment})`, () => {
  it('1-D RoPE: random shapes, positions up to 5000', async () => {
    const rng = new Rng(1);
    for (const hd of [16, 64, 128]) {
      const T = rng.int(1, 37);
      const pos = Uint32Array.from({ length: T }, () => rng.int(0, 5000));
      await check(RopeMode.Neox, { T, H: rng.int(1, 5), hd, theta: 1e6 }, pos);
    }
  });

  it('interleaved MRoPE: 3-axis vision-span positions; equals 1-D RoPE when t = h = w', async () => {
    const rng = new Rng(2);
    for (const [hd, section] of [[16, [4, 2, 2]], [128, [24, 20, 20]]] as const) {
      const T = rng.int(5, 41);
      const pos = new Uint32Array(3 * T);
      const p0 = rng.int(0, 3000);
      for (let i = 0; i < T; i++) {
        pos[i] = p0;
        pos[T + i] = p0 + Math.floor(i / 5);
        pos[2 * T + i] = p0 + (i % 5);
      }
      await check(RopeMode.InterleavedMrope, { T, H: 3, hd, theta: 5e6, section: [...section] }, pos);
      const same = new Uint32Array(3 * T);
      for (let a = 0; a < 3; a++) for (let i = 0; i < T; i++) same[a * T + i] = p0 + i;
      const m = await check(RopeMode.InterleavedMrope, { T, H: 3, hd, theta: 5e6, section: [...section] }, same);
      const n = await check(RopeMode.Neox, { T, H: 3, hd, theta: 5e6 }, same.subarray(0, T));
      expect(Array.from(m)).toEqual(Array.from(n));
    }
  });

  it('stays within the f32 tolerance at long-context positions (up to max_position 262144)', async () => {
    // The sin/cos argument reduction is exact (common/trig.wgsl), so no looser tolerance is needed.
    const T = 9;
    const pos = Uint32Array.from({ length: T }, (_, i) => 199_990 + 7919 * i);
    pos[T - 1] = 262_143;
    await check(RopeMode.Neox, { T, H: 2, hd: 128, theta: 5e6 }, pos);
    await check(RopeMode.Neox, { T, H: 1, hd: 16, theta: 1 }, pos);
  });

  it('vision 2-D RoPE over several grids', async () => {
    for (const grids of [[[1, 4, 6]], [[2, 4, 4], [1, 2, 2]]] as [number, number, number][][]) {
      const pos = visionPatchPositions(grids, 2);
      const P = pos.length / 2;
      await check(RopeMode.Vision2d, { T: P, H: 2, hd: 16, theta: 10000 }, pos);
      await check(RopeMode.Vision2d, { T: P, H: 3, hd: 64, theta: 10000 }, pos);
    }
  });
});
