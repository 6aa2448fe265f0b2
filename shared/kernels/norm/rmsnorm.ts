import src from '../../../shaders/norm/rmsnorm.wgsl?raw';
import type { GpuContext } from '../../gpu/context.ts';
import { assembleWgsl, type ProgramCall, splitWorkgroups } from '../../gpu/program.ts';
import type { Tensor } from '../../gpu/tensor.ts';
import { alias, constBool, constU32, enables } from '../header.ts';
import { expectParamVector, type RowNormArgs, resolveRowNorm, rowNormUniforms, rowNormWorkgroupSize } from './common.ts';

export const RMSNORM = 'norm/rmsnorm';

export interface RmsNormArgs extends RowNormArgs {
  /** `[n]`, f32 or f16 (f16 only when the adapter has shader-f16). */
  weight: Tensor;
}

/**
 * Qwen3 RMSNorm over rows of length n, out of place or in place. See `shaders/norm/rmsnorm.wgsl`.
 *
 * @example
 * // input_layernorm: hidden [T, 2048] → normed [T, 2048]
 * ctx.run(rmsNormCall(ctx, { x: hidden, y: normed, weight, rows: T, n: 2048, eps: 1e-6 }));
 * // q_norm, in place on q [T, heads·128]: one row per (token, head)
 * ctx.run(rmsNormCall(ctx, { x: q, weight: qNorm, rows: T * heads, n: 128, eps: 1e-6 }));
 */
export function rmsNormCall(ctx: GpuContext, args: RmsNormArgs): ProgramCall {
  const r = resolveRowNorm(RMSNORM, args);
  expectParamVector(ctx, RMSNORM, 'weight', args.weight, r.n);
  const wt = args.weight.dtype;
  const wg = rowNormWorkgroupSize(r.n);
  return {
    info: {
      name: RMSNORM,
      cacheKey: `${wt}:wg=${wg}:inPlace=${r.inPlace}`,
      source: () =>
        assembleWgsl(enables(wt), alias('WT', wt), constU32('WG', wg), constBool('IN_PLACE', r.inPlace), src),
      access: ['read_write', 'read', 'read_write'],
    },
    bindings: [r.x, args.weight, r.inPlace ? ctx.dummyTensor() : r.y],
    uniforms: rowNormUniforms(r),
    workgroups: splitWorkgroups(r.rows, ctx.caps.limits.maxComputeWorkgroupsPerDimension),
  };
}
