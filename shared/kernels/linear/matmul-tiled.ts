import src from '../../../shaders/linear/matmul-tiled.wgsl?raw';
import type { ProgramCall } from '../../gpu/program.ts';
import { assembleWgsl } from '../../gpu/program.ts';
import type { GpuContext } from '../../gpu/context.ts';
import { alias, constBool, enables } from '../header.ts';
import { type LinearArgs, linearUniforms, resolveLinear, weightWindows } from './common.ts';

export const MATMUL_TILED = 'linear/matmul-tiled';

/** 16×16-tiled matmul for any shape. See the header of `shaders/linear/matmul-tiled.wgsl`. */
export function matmulTiled(ctx: GpuContext, args: LinearArgs): ProgramCall {
  const r = resolveLinear(MATMUL_TILED, args);
  const wt = r.w.dtype;
  const hasBias = r.bias !== undefined;
  const { w, bias } = weightWindows(r);
  return {
    info: {
      name: MATMUL_TILED,
      cacheKey: `${wt}:bias=${hasBias}`,
      source: () => assembleWgsl(enables(wt), alias('WT', wt), constBool('HAS_BIAS', hasBias), src),
      access: ['read', 'read', 'read', 'read_write'],
    },
    bindings: [r.x, w, bias ?? ctx.dummyTensor(), r.y],
    uniforms: linearUniforms(r),
    workgroups: [Math.ceil(r.N / 16), Math.ceil(r.M / 16), 1],
  };
}
