import src from '../../../shaders/elementwise/gelu-erf.wgsl?raw';
import type { GpuContext } from '../../gpu/context.ts';
import type { ProgramCall } from '../../gpu/program.ts';
import { type UnaryArgs, unaryCall } from './common.ts';

export const GELU_ERF = 'elementwise/gelu-erf';

/**
 * Exact GELU 0.5·x·(1 + erf(x/√2)), out of place or in place. See `shaders/elementwise/gelu-erf.wgsl`.
 *
 * @example
 * ctx.run(geluErfCall(ctx, { x: mergerHidden })); // in place
 */
export function geluErfCall(ctx: GpuContext, args: UnaryArgs): ProgramCall {
  return unaryCall(ctx, GELU_ERF, src, args);
}
