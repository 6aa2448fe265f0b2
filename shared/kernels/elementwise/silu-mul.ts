import src from '../../../shaders/elementwise/silu-mul.wgsl?raw';
import { ShapeError } from '../../errors.ts';
import type { GpuContext } from '../../gpu/context.ts';
import { assembleWgsl, type ProgramCall } from '../../gpu/program.ts';
import type { Tensor } from '../../gpu/tensor.ts';
import { constU32 } from '../header.ts';
import { ELEMENTWISE_WG, elementCountArg, elementwiseWorkgroups, expectRange } from './common.ts';

export const SILU_MUL = 'elementwise/silu-mul';

export interface SiluMulArgs {
  /** gate_proj output, element i at `gateOffset + i`. f32. */
  gate: Tensor;
  /** up_proj output, element i at `upOffset + i`. f32. */
  up: Tensor;
  /** silu(gate)·up, element i at `outOffset + i`. f32, in a buffer other than gate's and up's. */
  out: Tensor;
  /** Elements (T·I); defaults to all of gate after gateOffset. */
  n?: number;
  gateOffset?: number;
  upOffset?: number;
  outOffset?: number;
}

/**
 * SwiGLU: out = silu(gate)·up. See `shaders/elementwise/silu-mul.wgsl`.
 *
 * @example
 * ctx.run(siluMulCall(ctx, { gate, up, out: act })); // [T, I] each
 */
export function siluMulCall(ctx: GpuContext, args: SiluMulArgs): ProgramCall {
  const gateOffset = args.gateOffset ?? 0;
  const upOffset = args.upOffset ?? 0;
  const outOffset = args.outOffset ?? 0;
  const n = elementCountArg(SILU_MUL, args.n, args.gate, gateOffset);
  expectRange(SILU_MUL, 'gate', args.gate, gateOffset, n);
  expectRange(SILU_MUL, 'up', args.up, upOffset, n);
  expectRange(SILU_MUL, 'out', args.out, outOffset, n);
  if (args.out.buffer === args.gate.buffer || args.out.buffer === args.up.buffer) {
    throw new ShapeError(`${SILU_MUL}: out "${args.out.label}" must not share a buffer with gate or up`);
  }
  return {
    info: {
      name: SILU_MUL,
      cacheKey: `wg=${ELEMENTWISE_WG}`,
      source: () => assembleWgsl(constU32('WG', ELEMENTWISE_WG), src),
      access: ['read', 'read', 'read_write'],
    },
    bindings: [args.gate, args.up, args.out],
    uniforms: [{ u32: n }, { u32: gateOffset }, { u32: upOffset }, { u32: outOffset }],
    workgroups: elementwiseWorkgroups(ctx, n),
  };
}
