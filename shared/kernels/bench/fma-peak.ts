import src from '../../../shaders/bench/fma-peak.wgsl?raw';
import { ShapeError } from '../../errors.ts';
import type { GpuContext } from '../../gpu/context.ts';
import { assembleWgsl, type ProgramCall, splitWorkgroups } from '../../gpu/program.ts';
import { expectTensor, type Tensor } from '../../gpu/tensor.ts';
import { constU32 } from '../header.ts';

export const FMA_PEAK = 'bench/fma-peak';
/** Independent vec4 fma chains per thread. */
export const FMA_CHAINS = 8;

export interface FmaPeakArgs {
  /** One vec4 per thread: `[threads · 4]` f32 (written so the loop cannot be dropped). */
  out: Tensor;
  /** Threads (a multiple of 256 is best). */
  threads: number;
  /** Loop iterations per thread. */
  iters: number;
}

/** FLOPs one `fmaPeak` dispatch performs (an fma counts 2). */
export function fmaPeakFlops(threads: number, iters: number): number {
  return threads * iters * FMA_CHAINS * 4 * 2;
}

/**
 * The compute-bound probe of `vlmesh bench`. See `shaders/bench/fma-peak.wgsl`.
 *
 * @example
 * const out = ctx.empty([threads * 4], 'f32', 'fma.out');
 * ctx.run(fmaPeak(ctx, { out, threads, iters: 4096 }));
 */
export function fmaPeak(ctx: GpuContext, args: FmaPeakArgs): ProgramCall {
  const { threads, iters } = args;
  if (!Number.isInteger(threads) || threads <= 0) throw new ShapeError(`${FMA_PEAK}: threads must be a positive integer, got ${threads}`);
  if (!Number.isInteger(iters) || iters <= 0) throw new ShapeError(`${FMA_PEAK}: iters must be a positive integer, got ${iters}`);
  expectTensor(args.out, `${FMA_PEAK} out`, { dtype: 'f32' });
  if (args.out.size < threads * 4) throw new ShapeError(`${FMA_PEAK}: out "${args.out.label}" needs ${threads * 4} elements, has ${args.out.size}`);
  return {
    info: {
      name: FMA_PEAK,
      cacheKey: `chains=${FMA_CHAINS}`,
      source: () => assembleWgsl(constU32('CHAINS', FMA_CHAINS), src),
      access: ['read_write'],
    },
    bindings: [args.out],
    uniforms: [{ u32: iters }, { u32: threads }, { f32: 0.5 }, { u32: 0 }],
    workgroups: splitWorkgroups(Math.ceil(threads / 256), ctx.caps.limits.maxComputeWorkgroupsPerDimension),
  };
}
