import src from '../../../shaders/norm/layernorm.wgsl?raw';
import type { GpuContext } from '../../gpu/context.ts';
import { assembleWgsl, type ProgramCall, splitWorkgroups } from '../../gpu/program.ts';
import type { Tensor } from '../../gpu/tensor.ts';
import { alias, constBool, constU32, enables } from '../header.ts';
import { expectParamVector, type RowNormArgs, resolveRowNorm, rowNormUniforms, rowNormWorkgroupSize } from './common.ts';

export const LAYERNORM = 'norm/layernorm';

export interface LayerNormArgs extends RowNormArgs {
  /** `[n]`, f32 or f16 (f16 only when the adapter has shader-f16). */
  weight: Tensor;
  /** `[n]`, the same dtype as `weight`. */
  bias: Tensor;
}

/**
 * torch LayerNorm (weight and bias, biased variance) over rows of length n, out of place or in
 * place. See `shaders/norm/layernorm.wgsl`.
 *
 * @example
 * // ViT norm1: x [P, 1024] → h [P, 1024]
 * ctx.run(layerNormCall(ctx, { x, y: h, weight: ln1W, bias: ln1B, rows: P, n: 1024, eps: 1e-6 }));
 */
export function layerNormCall(ctx: GpuContext, args: LayerNormArgs): ProgramCall {
  const r = resolveRowNorm(LAYERNORM, args);
  expectParamVector(ctx, LAYERNORM, 'weight', args.weight, r.n);
  expectParamVector(ctx, LAYERNORM, 'bias', args.bias, r.n, args.weight.dtype);
  const wt = args.weight.dtype;
  const wg = rowNormWorkgroupSize(r.n);
  return {
    info: {
      name: LAYERNORM,
      cacheKey: `${wt}:wg=${wg}:inPlace=${r.inPlace}`,
      source: () =>
        assembleWgsl(enables(wt), alias('WT', wt), constU32('WG', wg), constBool('IN_PLACE', r.inPlace), src),
      access: ['read_write', 'read', 'read', 'read_write'],
    },
    bindings: [r.x, args.weight, args.bias, r.inPlace ? ctx.dummyTensor() : r.y],
    uniforms: rowNormUniforms(r),
    workgroups: splitWorkgroups(r.rows, ctx.caps.limits.maxComputeWorkgroupsPerDimension),
  };
}
