import { describe, expect, it } from 'vitest';
import { linear, linearCalls } from '../../shared/kernels/linear/index.ts';
import { linearRef } from '../../shared/reference/linear.ts';
import { expectClose, F32_TOL } from '../support/close.ts';
import { environment, testContext } from '../support/gpu.ts';
import { Rng } from '../support/random.ts';

// A real weight above the storage binding window. On lavapipe the window is the device's own
// maxStorageBufferBindingSize (128 MiB); SwiftShader allows 1 GiB bindings, so the browser
// project caps its window at 128 MiB to take the same path with the same tensor.
const WINDOW = 128 * 2 ** 20;
const ctx = await testContext({ maxBindingBytes: WINDOW });

describe.skipIf(!ctx)(`tensor larger than one storage binding (${environment})`, () => {
  it('decode linear over a W of more than 128 MiB', async () => {
    const c = ctx!;
    const K = 64;
    const limit = c.caps.maxBindingBytes;
    expect(limit).toBeLessThanOrEqual(WINDOW);
    const N = Math.floor(limit / (K * 4)) + 4096; // bytes(W) > window
    expect(N * K * 4).toBeGreaterThan(limit);
    const rng = new Rng(9);
    const x = rng.normals(K);
    const w = new Float32Array(N * K);
    for (let i = 0; i < w.length; i++) w[i] = ((i * 2654435761) % 1000) / 1000 - 0.5;
    const xt = c.upload(x, [1, K], 'f32', 'x');
    const wt = c.upload(w, [N, K], 'f32', 'big-w');
    const yt = c.empty([1, N], 'f32', 'y');
    expect(linearCalls(c, { x: xt, w: wt, y: yt, M: 1, N, K }).length).toBeGreaterThan(1);
    linear(c, { x: xt, w: wt, y: yt, M: 1, N, K });
    const y = await c.readF32(yt);
    expectClose(y, linearRef({ x, w, M: 1, N, K }), F32_TOL, 'big linear');
    for (const t of [xt, wt, yt]) t.release();
    c.pool.trim();
  });
});
