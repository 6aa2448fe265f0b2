import src from '../../../shaders/elementwise/gelu-tanh.wgsl?raw';
import type { GpuContext } from '../../gpu/context.ts';
import { assembleWgsl, type ProgramCall } from '../../gpu/program.ts';
import { constBool, constU32 } from '../header.ts';
import { ELEMENTWISE_WG, elementwiseWorkgroups, resolveUnary, type UnaryArgs } from './common.ts';

export const GELU_TANH = 'elementwise/gelu-tanh';

/**
 * GELU, tanh approximation (`gelu_pytorch_tanh`), out of place or in place.
 * See `shaders/elementwise/gelu-tanh.wgsl`.
 *
 * @example
 * ctx.run(geluTanhCall(ctx, { x: fc1Out })); // in place
 */
export function geluTanhCall(ctx: GpuContext, args: UnaryArgs): ProgramCall {
  const r = resolveUnary(GELU_TANH, args);
  return {
    info: {
      name: GELU_TANH,
      cacheKey: `wg=${ELEMENTWISE_WG}:inPlace=${r.inPlace}`,
      source: () => assembleWgsl(constU32('WG', ELEMENTWISE_WG), constBool('IN_PLACE', r.inPlace), src),
      access: ['read_write', 'read_write'],
    },
    bindings: [r.x, r.inPlace ? ctx.dummyTensor() : r.y],
    uniforms: [{ u32: r.n }, { u32: r.xOffset }, { u32: r.yOffset }, { u32: 0 }],
    workgroups: elementwiseWorkgroups(ctx, r.n),
  };
}
