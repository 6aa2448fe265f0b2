import { describe, expect, it } from 'vitest';
import {
  DeviceLostError,
  GpuOutOfMemoryError,
  GpuValidationError,
  ShaderCompileError,
  ShapeError,
} from '../../shared/errors.ts';
import type { ProgramCall } from '../../shared/gpu/program.ts';
import { toF16Array } from '../../shared/gpu/f16.ts';
import { linear, linearCalls } from '../../shared/kernels/linear/index.ts';
import { environment, testContext } from '../support/gpu.ts';
import { Rng } from '../support/random.ts';

const ctx = await testContext();

function brokenProgram(source: string, name = 'test/broken'): ProgramCall {
  return {
    info: { name, cacheKey: source, source: () => source, access: ['read_write'] },
    bindings: [ctx!.dummyTensor()],
    workgroups: [1, 1, 1],
  };
}

describe.skipIf(!ctx)(`GPU runtime (${environment})`, () => {
  it('reports the adapter and the features it enabled', () => {
    const c = ctx!;
    console.log(
      `[${environment}] adapter: ${c.adapter.description || c.adapter.device} (${c.adapter.vendor}/${c.adapter.architecture}), ` +
        `fallback=${c.adapter.isFallbackAdapter}, f16=${c.caps.f16}, subgroups=${c.caps.subgroups}, ` +
        `maxStorageBufferBindingSize=${c.caps.limits.maxStorageBufferBindingSize}`,
    );
    expect(c.caps.limits.maxStorageBufferBindingSize).toBeGreaterThanOrEqual(128 * 2 ** 20);
    expect(c.caps.f16).toBe(c.device.features.has('shader-f16'));
    expect(c.variants.weights).toBe(c.caps.f16 ? 'f16' : 'f32');
  });

  it('uploads and reads back every dtype, including odd-length f16 and views', async () => {
    const c = ctx!;
    const f = new Float32Array([1.5, -2, 3.25]);
    expect(Array.from(await c.readF32(c.upload(f, [3], 'f32', 'f')))).toEqual([1.5, -2, 3.25]);
    const h = c.upload(toF16Array([0.5, 1, -4, 8, 0.25]), [5], 'f16', 'h');
    expect(Array.from(await c.readF32(h))).toEqual([0.5, 1, -4, 8, 0.25]);
    expect(Array.from(await c.readF32(h.view(1, 3)))).toEqual([1, -4, 8]);
    const u = c.upload(new Uint32Array([0, 1, 0xffffffff]), [3], 'u32', 'u');
    expect(Array.from(await c.read(u))).toEqual([0, 1, 0xffffffff]);
    const i = c.upload(new Int32Array([-7, 7]), [2], 'i32', 'i');
    expect(Array.from(await c.read(i))).toEqual([-7, 7]);
    expect(() => c.upload(new Float32Array(3), [4], 'f32', 'bad')).toThrow(ShapeError);
  });

  it('reuses pooled buffers and caches pipelines by compile-time facts only', async () => {
    const c = ctx!;
    const rng = new Rng(11);
    const before = c.pool.stats.reused;
    const a = c.upload(rng.normals(64), [64], 'f32', 'a');
    a.release();
    const b = c.empty([60], 'f32', 'b');
    expect(c.pool.stats.reused).toBe(before + 1);
    expect(b.buffer.label).toBe('b');
    b.release();

    const run = (M: number, N: number, K: number) => {
      const x = c.upload(rng.normals(M * K), [M, K], 'f32', 'x');
      const w = c.upload(rng.normals(N * K), [N, K], 'f32', 'w');
      const y = c.empty([M, N], 'f32', 'y');
      linear(c, { x, w, y, M, N, K });
      return [x, w, y];
    };
    const t1 = run(20, 9, 8);
    await c.sync();
    const n = c.pipelineCount;
    const t2 = run(33, 17, 12); // other shapes, same kernel and dtype: no new pipeline
    await c.sync();
    expect(c.pipelineCount).toBe(n);
    for (const t of [...t1, ...t2]) t.release();
  });

  it('labels pipelines with the program name and prints assembled WGSL behind the debug switch', async () => {
    const c = ctx!;
    const seen: { name: string; wgsl: string }[] = [];
    c.setDebugWgsl((name, wgsl) => seen.push({ name, wgsl }));
    const x = c.zeros([4, 5], 'f32', 'x');
    const w = c.zeros([3, 5], 'f32', 'w');
    const b = c.zeros([3], 'f32', 'b');
    const y = c.zeros([4, 3], 'f32', 'y');
    const [call] = linearCalls(c, { x, w, y, bias: b, M: 4, N: 3, K: 5 });
    c.run(call);
    await c.sync();
    c.setDebugWgsl(false);
    const hit = seen.find((s) => s.name === call.info.name);
    expect(hit, 'the newly compiled pipeline was printed').toBeDefined();
    expect(hit!.wgsl).toContain('alias WT = f32;');
    expect(hit!.wgsl).toContain('const HAS_BIAS: bool = true;');
    expect(c.pipeline(call.info).pipeline.label).toContain(call.info.name);
  });

  it('turns a WGSL compile error into ShaderCompileError with line numbers', async () => {
    const c = ctx!;
    c.run(brokenProgram('@compute @workgroup_size(1) fn main() { let x: u32 = undefined_thing; }'));
    const err = await c.sync().then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(ShaderCompileError);
    expect((err as Error).message).toMatch(/line \d+/);
    expect((err as Error).message).toContain('test/broken');
  });

  it('turns a binding-layout mismatch into GpuValidationError', async () => {
    const c = ctx!;
    // Declares a uniform at binding 0 where the program says storage.
    const src = '@group(0) @binding(0) var<uniform> u: vec4<f32>;\n@compute @workgroup_size(1) fn main() { _ = u; }';
    c.run(brokenProgram(src, 'test/layout'));
    const err = await c.sync().then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(GpuValidationError);
  });

  it('refuses a tensor above maxBufferSize with GpuOutOfMemoryError', () => {
    const c = ctx!;
    const n = Math.floor(c.caps.limits.maxBufferSize / 4) + 1024;
    expect(() => c.empty([n], 'f32', 'huge')).toThrow(GpuOutOfMemoryError);
  });

  it('names the tensor and the expected shape in kernel validation errors', () => {
    const c = ctx!;
    const x = c.zeros([2, 8], 'f32', 'x');
    const w = c.zeros([3, 7], 'f32', 'q_proj.weight');
    const y = c.zeros([2, 3], 'f32', 'y');
    expect(() => linearCalls(c, { x, w, y, M: 2, N: 3, K: 8 })).toThrow(/q_proj\.weight.*\[≥3, 8\].*\[3,7\]/);
  });
});

describe.skipIf(!ctx)(`device loss (${environment})`, async () => {
  const lostSeen: DeviceLostError[] = [];
  const doomed = await testContext({ onDeviceLost: (e) => lostSeen.push(e) });

  it('reports a lost device and refuses further work with DeviceLostError', async () => {
    const c = doomed!;
    const t = c.zeros([4], 'f32', 't');
    c.device.destroy(); // simulates a driver reset: not through ctx.destroy()
    await c.device.lost;
    await new Promise((r) => setTimeout(r, 0));
    expect(lostSeen.length).toBe(1);
    expect(lostSeen[0]).toBeInstanceOf(DeviceLostError);
    expect(c.isLost).toBe(true);
    expect(() => c.empty([4], 'f32', 'after')).toThrow(DeviceLostError);
    await expect(c.readF32(t)).rejects.toBeInstanceOf(DeviceLostError);
  });
});

describe.skipIf(!ctx)(`batched copies (${environment})`, () => {
  it('copies views in order with dispatches and checks dtype and size', async () => {
    const c = ctx!;
    const a = c.upload(new Float32Array([1, 2, 3, 4, 5, 6]), [6], 'f32', 'a');
    const b = c.zeros([8], 'f32', 'b');
    c.copy(a.view(2, 3), b.view(4, 3));
    expect(Array.from(await c.readF32(b))).toEqual([0, 0, 0, 0, 3, 4, 5, 0]);
    expect(() => c.copy(a.view(0, 2), b.view(0, 3))).toThrow(ShapeError);
    const h = c.zeros([3], 'f16', 'h');
    expect(() => c.copy(h.view(1, 1), h.view(0, 1))).toThrow(/multiples of 4/);
  });
});
