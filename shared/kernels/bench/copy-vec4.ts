import src from '../../../shaders/bench/copy-vec4.wgsl?raw';
import { ShapeError } from '../../errors.ts';
import type { GpuContext } from '../../gpu/context.ts';
import { assembleWgsl, type ProgramCall, splitWorkgroups } from '../../gpu/program.ts';
import { expectTensor, type Tensor } from '../../gpu/tensor.ts';

export const COPY_VEC4 = 'bench/copy-vec4';

export interface CopyVec4Args {
  /** f32 source, a multiple of 4 elements. */
  src: Tensor;
  /** f32 destination, at least as large as `src`. */
  dst: Tensor;
}

/** Bytes one `copyVec4` dispatch moves over memory (read + write). */
export function copyVec4Bytes(elements: number): number {
  return 2 * elements * 4;
}

/**
 * The memory-bound probe of `vlmesh bench`. See `shaders/bench/copy-vec4.wgsl`.
 *
 * @example
 * ctx.run(copyVec4(ctx, { src, dst }));
 */
export function copyVec4(ctx: GpuContext, args: CopyVec4Args): ProgramCall {
  expectTensor(args.src, `${COPY_VEC4} src`, { dtype: 'f32' });
  expectTensor(args.dst, `${COPY_VEC4} dst`, { dtype: 'f32' });
  if (args.src.size % 4 !== 0) throw new ShapeError(`${COPY_VEC4}: src "${args.src.label}" has ${args.src.size} elements, not a multiple of 4`);
  if (args.dst.size < args.src.size) throw new ShapeError(`${COPY_VEC4}: dst "${args.dst.label}" is smaller than src`);
  const n = args.src.size / 4;
  // Enough threads to keep every core busy; each copies n / threads vec4s.
  const threads = Math.min(Math.ceil(n / 256) * 256, 256 * 4096);
  return {
    info: { name: COPY_VEC4, cacheKey: '', source: () => assembleWgsl(src), access: ['read', 'read_write'] },
    bindings: [args.src, args.dst],
    uniforms: [{ u32: n }, { u32: threads }, { u32: 0 }, { u32: 0 }],
    workgroups: splitWorkgroups(threads / 256, ctx.caps.limits.maxComputeWorkgroupsPerDimension),
  };
}
