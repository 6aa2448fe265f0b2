import trig from '../../../shaders/common/trig.wgsl?raw';
import src from '../../../shaders/rope/rotary.wgsl?raw';
import { ShapeError } from '../../errors.ts';
import type { GpuContext } from '../../gpu/context.ts';
import { assembleWgsl, type ProgramCall, splitWorkgroups } from '../../gpu/program.ts';
import { expectTensor, type Tensor } from '../../gpu/tensor.ts';
import { constU32 } from '../header.ts';

export const ROTARY = 'rope/rotary';

export interface RotaryArgs {
  /** `[T, H, head_dim]` f32, rotated in place. */
  x: Tensor;
  /** Positions `[axes, T]` u32 (rows as the tables' axes). */
  positions: Tensor;
  /** Per-pair inverse frequencies `[head_dim/2]` f32 and axes `[head_dim/2]` u32 (see tables.ts). */
  freqs: Tensor;
  axisOf: Tensor;
}

/**
 * Rotate-half rotary embedding in place. See `shaders/rope/rotary.wgsl`.
 *
 * @example
 * const t = ropeTables(RopeMode.InterleavedMrope, { headDim: 128, theta: 5e6, mropeSection: [24, 20, 20] });
 * ctx.run(rotary(ctx, { x: q, positions, freqs: ctx.upload(t.freqs, …), axisOf: ctx.upload(t.axisOf, …) }));
 */
export function rotary(ctx: GpuContext, a: RotaryArgs): ProgramCall {
  expectTensor(a.x, `${ROTARY} x`, { dtype: 'f32', rank: 3 });
  const [T, H, hd] = a.x.shape;
  if (hd % 2 !== 0) throw new ShapeError(`${ROTARY}: head_dim ${hd} of "${a.x.label}" must be even`);
  const half = hd / 2;
  expectTensor(a.freqs, `${ROTARY} freqs`, { dtype: 'f32', shape: [half] });
  expectTensor(a.axisOf, `${ROTARY} axisOf`, { dtype: 'u32', shape: [half] });
  expectTensor(a.positions, `${ROTARY} positions`, { dtype: 'u32', rank: 2 });
  if (a.positions.shape[1] !== T) {
    throw new ShapeError(`${ROTARY}: positions must have shape [axes, ${T}], got [${a.positions.shape}]`);
  }
  return {
    info: {
      name: ROTARY,
      cacheKey: `half=${half}`,
      source: () => assembleWgsl(constU32('HALF', half), trig, src),
      access: ['read_write', 'read', 'read', 'read'],
    },
    bindings: [a.x, a.positions, a.freqs, a.axisOf],
    uniforms: [{ u32: T }, { u32: H }, { u32: H * hd }, { u32: 0 }],
    workgroups: splitWorkgroups(Math.ceil((T * H * half) / 64), ctx.caps.limits.maxComputeWorkgroupsPerDimension),
  };
}
