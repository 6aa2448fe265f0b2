import src from '../../../shaders/elementwise/gelu-erf.wgsl?raw';
import type { GpuContext } from '../../gpu/context.ts';
import { assembleWgsl, type ProgramCall } from '../../gpu/program.ts';
import { constBool, constU32 } from '../header.ts';
import { ELEMENTWISE_WG, elementwiseWorkgroups, resolveUnary, type UnaryArgs } from './common.ts';

export const GELU_ERF = 'elementwise/gelu-erf';

/**
 * Exact GELU 0.5·x·(1 + erf(x/√2)), out of place or in place. See `shaders/elementwise/gelu-erf.wgsl`.
 *
 * @example
 * ctx.run(geluErfCall(ctx, { x: mergerHidden })); // in place
 */
export function geluErfCall(ctx: GpuContext, args: UnaryArgs): ProgramCall {
  const r = resolveUnary(GELU_ERF, args);
  return {
    info: {
      name: GELU_ERF,
      cacheKey: `wg=${ELEMENTWISE_WG}:inPlace=${r.inPlace}`,
      source: () => assembleWgsl(constU32('WG', ELEMENTWISE_WG), constBool('IN_PLACE', r.inPlace), src),
      access: ['read_write', 'read_write'],
    },
    bindings: [r.x, r.inPlace ? ctx.dummyTensor() : r.y],
    uniforms: [{ u32: r.n }, { u32: r.xOffset }, { u32: r.yOffset }, { u32: 0 }],
    workgroups: elementwiseWorkgroups(ctx, r.n),
  };
}
