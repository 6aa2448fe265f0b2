import src from '../../../shaders/linear/matmul-q4.wgsl?raw';
import type { GpuContext } from '../../gpu/context.ts';
import { assembleWgsl, type ProgramCall } from '../../gpu/program.ts';
import { alias, constBool, constU32, enables } from '../header.ts';
import { linearUniforms } from './common.ts';
import { type Q4LinearArgs, q4Windows, resolveQ4Linear } from './q4.ts';

export const MATMUL_Q4 = 'linear/matmul-q4';

/**
 * 64×64 register-tiled matmul with a q4 weight, dequantized tile by tile into workgroup memory.
 * See `shaders/linear/matmul-q4.wgsl`.
 */
export function matmulQ4(ctx: GpuContext, args: Q4LinearArgs): ProgramCall {
  const r = resolveQ4Linear(MATMUL_Q4, args);
  const st = r.w.scaleDtype;
  const G = r.w.groupSize;
  const hasBias = r.bias !== undefined;
  const { codes, scales, bias } = q4Windows(r);
  return {
    info: {
      name: MATMUL_Q4,
      cacheKey: `${st}:bias=${hasBias}:g=${G}`,
      source: () => assembleWgsl(enables(st), alias('ST', st), constBool('HAS_BIAS', hasBias), constU32('GROUP', G), src),
      access: ['read', 'read', 'read', 'read', 'read_write'],
    },
    bindings: [r.x, codes, scales, bias ?? ctx.dummyTensor(), r.y],
    uniforms: linearUniforms(r),
    workgroups: [Math.ceil(r.N / 64), Math.ceil(r.M / 64), 1],
  };
}
