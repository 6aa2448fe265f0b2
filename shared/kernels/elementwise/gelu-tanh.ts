import src from '../../../shaders/elementwise/gelu-tanh.wgsl?raw';
import type { GpuContext } from '../../gpu/context.ts';
import type { ProgramCall } from '../../gpu/program.ts';
import { type UnaryArgs, unaryCall } from './common.ts';

export const GELU_TANH = 'elementwise/gelu-tanh';

/**
 * GELU, tanh approximation (`gelu_pytorch_tanh`), out of place or in place.
 * See `shaders/elementwise/gelu-tanh.wgsl`.
 *
 * @example
 * ctx.run(geluTanhCall(ctx, { x: fc1Out })); // in place
 */
export function geluTanhCall(ctx: GpuContext, args: UnaryArgs): ProgramCall {
  return unaryCall(ctx, GELU_TANH, src, args);
}
