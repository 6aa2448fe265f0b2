import src from '../../../shaders/linear/matmul-vec4.wgsl?raw';
import { ShapeError } from '../../errors.ts';
import type { GpuContext } from '../../gpu/context.ts';
import { assembleWgsl, type ProgramCall } from '../../gpu/program.ts';
import { alias, constBool, enables } from '../header.ts';
import { type LinearArgs, linearUniforms, resolveLinear, weightWindows } from './common.ts';

export const MATMUL_VEC4 = 'linear/matmul-vec4';

/** True when the vec4 kernels can read x and W for these arguments. */
export function vec4Compatible(a: Pick<LinearArgs, 'K' | 'ldx' | 'xOffset'>): boolean {
  return a.K % 4 === 0 && (a.ldx ?? a.K) % 4 === 0 && (a.xOffset ?? 0) % 4 === 0;
}

/** 64×64 register-tiled matmul with vec4 loads. See `shaders/linear/matmul-vec4.wgsl`. */
export function matmulVec4(ctx: GpuContext, args: LinearArgs): ProgramCall {
  const r = resolveLinear(MATMUL_VEC4, args);
  if (!vec4Compatible(r)) {
    throw new ShapeError(`${MATMUL_VEC4}: K (${r.K}), ldx (${r.ldx}) and xOffset (${r.xOffset}) must be multiples of 4`);
  }
  const wt = r.w.dtype;
  const hasBias = r.bias !== undefined;
  const { w, bias } = weightWindows(r);
  return {
    info: {
      name: MATMUL_VEC4,
      cacheKey: `${wt}:bias=${hasBias}`,
      source: () => assembleWgsl(enables(wt), alias('WT', wt), constBool('HAS_BIAS', hasBias), src),
      access: ['read', 'read', 'read', 'read_write'],
    },
    bindings: [r.x, w, bias ?? ctx.dummyTensor(), r.y],
    uniforms: linearUniforms(r),
    workgroups: [Math.ceil(r.N / 64), Math.ceil(r.M / 64), 1],
  };
}
