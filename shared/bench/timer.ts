/**
 * Timing of GPU work for `vlmesh bench`: warm-up runs, then `repeats` timed samples, each the
 * time of `inner` back-to-back repetitions divided by `inner`; the caller takes the median.
 *
 *   timestamp-query (when the device has it): one compute pass per dispatch; the first pass
 *     writes the begin timestamp, the last the end one → GPU time only, no submit overhead.
 *   wall: await ctx.sync(); t0; encode; await ctx.sync(); t1 → includes submit and wake-up.
 */
import { GpuValidationError } from '../errors.ts';
import type { GpuContext } from '../gpu/context.ts';
import { dtypeBytes } from '../gpu/dtype.ts';
import { packUniforms, type ProgramCall } from '../gpu/program.ts';
import { isView } from '../gpu/tensor.ts';
import { type SampleSummary, summarize } from './stats.ts';

export type TimingMethod = 'timestamp-query' | 'wall';

export interface TimeOptions {
  /** Untimed runs first (pipeline compilation, caches). Default 1. */
  warmup?: number;
  /** Timed samples. Default 5. */
  repeats?: number;
  /** Repetitions per sample (amortises per-sample overhead). Default 1. */
  inner?: number;
  /** Force a method; default timestamp-query when the device has it. */
  method?: TimingMethod;
}

export interface Timing {
  /** Milliseconds per repetition. */
  ms: SampleSummary;
  method: TimingMethod;
}

const QUERY_RESOLVE = 0x200; // GPUBufferUsage.QUERY_RESOLVE
const COPY_SRC = 0x04;
const COPY_DST = 0x08;
const MAP_READ = 0x01;
const UNIFORM = 0x40;

/** The timing method this context supports best. */
export function defaultTimingMethod(ctx: GpuContext): TimingMethod {
  return ctx.caps.timestampQuery ? 'timestamp-query' : 'wall';
}

/**
 * Times a fixed list of dispatches (one repetition = all of `calls` in order).
 *
 * @example
 * const t = await timeCalls(ctx, linearCalls(ctx, args, 'linear/gemv'), { repeats: 5, inner: 4 });
 * console.log(t.ms.median);
 */
export async function timeCalls(ctx: GpuContext, calls: readonly ProgramCall[], o: TimeOptions = {}): Promise<Timing> {
  const method = o.method ?? defaultTimingMethod(ctx);
  if (method === 'wall') {
    return timeWall(
      ctx,
      () => {
        for (const c of calls) ctx.run(c);
      },
      o,
    );
  }
  return timeStamped(ctx, calls, o);
}

/**
 * Times arbitrary encoded work by wall clock: `encode` is called `inner` times between two
 * `ctx.sync()`s. `encode` may be async (work that reads back, like a decode step).
 */
export async function timeWall(ctx: GpuContext, encode: () => void | Promise<void>, o: TimeOptions = {}): Promise<Timing> {
  const warmup = o.warmup ?? 1;
  const repeats = o.repeats ?? 5;
  const inner = o.inner ?? 1;
  for (let i = 0; i < warmup; i++) {
    await encode();
    await ctx.sync();
  }
  const samples: number[] = [];
  for (let r = 0; r < repeats; r++) {
    await ctx.sync();
    const t0 = performance.now();
    for (let i = 0; i < inner; i++) await encode();
    await ctx.sync();
    samples.push((performance.now() - t0) / inner);
  }
  return { ms: summarize(samples), method: 'wall' };
}

async function timeStamped(ctx: GpuContext, calls: readonly ProgramCall[], o: TimeOptions): Promise<Timing> {
  const warmup = o.warmup ?? 1;
  const repeats = o.repeats ?? 5;
  const inner = o.inner ?? 1;
  const device = ctx.device;
  await ctx.sync(); // earlier work (uploads) done, errors reported
  device.pushErrorScope('validation');
  // Pipelines, uniforms and bind groups once: every repetition dispatches the same calls.
  const owned: GPUBuffer[] = [];
  const prepared = calls.map((call) => {
    const { pipeline, layout } = ctx.pipeline(call.info);
    const data = packUniforms(call.uniforms ?? []);
    const ubuf = device.createBuffer({ size: data.byteLength, usage: UNIFORM | COPY_DST, label: `${call.info.name}:params` });
    owned.push(ubuf);
    device.queue.writeBuffer(ubuf, 0, data);
    const entries: GPUBindGroupEntry[] = call.bindings.map((b, i) => {
      const t = isView(b) ? b.tensor : b;
      const bpe = dtypeBytes(t.dtype);
      const offset = isView(b) ? b.offset * bpe : 0;
      const size = Math.ceil(((isView(b) ? b.size : t.size) * bpe) / 4) * 4;
      return { binding: i, resource: { buffer: t.buffer, offset, size: Math.min(size, t.buffer.size - offset) } };
    });
    entries.push({ binding: call.bindings.length, resource: { buffer: ubuf, offset: 0, size: data.byteLength } });
    return { call, pipeline, group: device.createBindGroup({ label: call.info.name, layout, entries }) };
  });
  const querySet = device.createQuerySet({ type: 'timestamp', count: 2, label: 'bench:timestamps' });
  const resolve = device.createBuffer({ size: 16, usage: QUERY_RESOLVE | COPY_SRC, label: 'bench:resolve' });
  const readback = device.createBuffer({ size: 16, usage: MAP_READ | COPY_DST, label: 'bench:readback' });
  owned.push(resolve, readback);
  const passes = inner * prepared.length;
  const once = async (): Promise<number> => {
    const enc = device.createCommandEncoder({ label: 'bench:timed' });
    let k = 0;
    for (let i = 0; i < inner; i++) {
      for (const p of prepared) {
        const writes: GPUComputePassTimestampWrites = { querySet };
        if (k === 0) writes.beginningOfPassWriteIndex = 0;
        if (k === passes - 1) writes.endOfPassWriteIndex = 1;
        const pass = enc.beginComputePass({
          label: p.call.info.name,
          ...(k === 0 || k === passes - 1 ? { timestampWrites: writes } : {}),
        });
        pass.setPipeline(p.pipeline);
        pass.setBindGroup(0, p.group);
        const [x, y, z] = p.call.workgroups;
        pass.dispatchWorkgroups(x, y, z);
        pass.end();
        k++;
      }
    }
    enc.resolveQuerySet(querySet, 0, 2, resolve, 0);
    enc.copyBufferToBuffer(resolve, 0, readback, 0, 16);
    device.queue.submit([enc.finish()]);
    await readback.mapAsync(MAP_READ);
    const ts = new BigUint64Array(readback.getMappedRange().slice(0));
    readback.unmap();
    return Number(ts[1] - ts[0]) / 1e6 / inner;
  };
  let scopeOpen = true;
  try {
    for (let i = 0; i < warmup; i++) await once();
    const samples: number[] = [];
    for (let r = 0; r < repeats; r++) samples.push(await once());
    scopeOpen = false;
    const err = await device.popErrorScope();
    if (err) throw new GpuValidationError(`timed run: ${err.message}`);
    // A zero or negative span means the timestamps are unusable here (quantised, or not
    // monotonic): fall back to the wall clock rather than print nonsense.
    if (samples.some((s) => !(s > 0))) {
      return timeWall(
        ctx,
        () => {
          for (const c of calls) ctx.run(c);
        },
        { ...o, warmup: 0 },
      );
    }
    return { ms: summarize(samples), method: 'timestamp-query' };
  } finally {
    if (scopeOpen) await device.popErrorScope();
    querySet.destroy();
    for (const b of owned) b.destroy();
  }
}
