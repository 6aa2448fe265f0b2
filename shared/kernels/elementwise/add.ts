import addSrc from '../../../shaders/elementwise/add.wgsl?raw';
import addInPlaceSrc from '../../../shaders/elementwise/add-inplace.wgsl?raw';
import { ShapeError } from '../../errors.ts';
import type { GpuContext } from '../../gpu/context.ts';
import { assembleWgsl, type ProgramCall } from '../../gpu/program.ts';
import type { Tensor } from '../../gpu/tensor.ts';
import { constU32 } from '../header.ts';
import { ELEMENTWISE_WG, elementCountArg, elementwiseWorkgroups, expectRange } from './common.ts';

export const ADD = 'elementwise/add';
export const ADD_INPLACE = 'elementwise/add-inplace';

export interface AddInPlaceArgs {
  /** Accumulator, element i at `aOffset + i`. f32. */
  a: Tensor;
  /** Element i at `bOffset + i`. f32, in a buffer other than a's. */
  b: Tensor;
  /** Elements; defaults to all of a after aOffset. */
  n?: number;
  aOffset?: number;
  bOffset?: number;
}

export interface AddArgs extends AddInPlaceArgs {
  /**
   * a + b, element i at `outOffset + i`. Omit it, or pass `a` with a's offset, for a += b; `b`
   * with b's offset gives b += a.
   */
  out?: Tensor;
  outOffset?: number;
}

/**
 * a += b (residual update). See `shaders/elementwise/add-inplace.wgsl`.
 *
 * @example
 * // hidden[visual rows] += deepstack[k]
 * ctx.run(addInPlaceCall(ctx, { a: hidden, b: deepstack, aOffset: first * D, n: count * D }));
 */
export function addInPlaceCall(ctx: GpuContext, args: AddInPlaceArgs): ProgramCall {
  const aOffset = args.aOffset ?? 0;
  const bOffset = args.bOffset ?? 0;
  const n = elementCountArg(ADD_INPLACE, args.n, args.a, aOffset);
  expectRange(ADD_INPLACE, 'a', args.a, aOffset, n);
  expectRange(ADD_INPLACE, 'b', args.b, bOffset, n);
  if (args.b.buffer === args.a.buffer) {
    throw new ShapeError(
      `${ADD_INPLACE}: a "${args.a.label}" and b "${args.b.label}" share one buffer; write the sum to another tensor`,
    );
  }
  return {
    info: {
      name: ADD_INPLACE,
      cacheKey: `wg=${ELEMENTWISE_WG}`,
      source: () => assembleWgsl(constU32('WG', ELEMENTWISE_WG), addInPlaceSrc),
      access: ['read_write', 'read'],
    },
    bindings: [args.a, args.b],
    uniforms: [{ u32: n }, { u32: aOffset }, { u32: bOffset }, { u32: 0 }],
    workgroups: elementwiseWorkgroups(ctx, n),
  };
}

/**
 * out = a + b. When `out` is omitted or shares a buffer with a (or b), this is the in-place
 * kernel a += b (or b += a), which then requires out's offset to equal a's (or b's).
 * See `shaders/elementwise/add.wgsl`.
 *
 * @example
 * ctx.run(addCall(ctx, { a: x, b: posEmbed, out: h })); // h = x + posEmbed
 */
export function addCall(ctx: GpuContext, args: AddArgs): ProgramCall {
  const aOffset = args.aOffset ?? 0;
  const bOffset = args.bOffset ?? 0;
  const n = elementCountArg(ADD, args.n, args.a, aOffset);
  const out = args.out;
  for (const [acc, accOffset, addend, addendOffset] of [
    [args.a, aOffset, args.b, bOffset],
    [args.b, bOffset, args.a, aOffset],
  ] as const) {
    if (out !== undefined && out.buffer !== acc.buffer) continue;
    const outOffset = args.outOffset ?? accOffset;
    if (outOffset !== accOffset) {
      throw new ShapeError(
        `${ADD}: out shares "${acc.label}"'s buffer, so it must use its offset ${accOffset} (in place), got ${outOffset}`,
      );
    }
    return addInPlaceCall(ctx, { a: acc, b: addend, n, aOffset: accOffset, bOffset: addendOffset });
  }
  const o = out as Tensor;
  const outOffset = args.outOffset ?? 0;
  expectRange(ADD, 'a', args.a, aOffset, n);
  expectRange(ADD, 'b', args.b, bOffset, n);
  expectRange(ADD, 'out', o, outOffset, n);
  return {
    info: {
      name: ADD,
      cacheKey: `wg=${ELEMENTWISE_WG}`,
      source: () => assembleWgsl(constU32('WG', ELEMENTWISE_WG), addSrc),
      access: ['read', 'read', 'read_write'],
    },
    bindings: [args.a, args.b, o],
    uniforms: [{ u32: n }, { u32: aOffset }, { u32: bOffset }, { u32: outOffset }],
    workgroups: elementwiseWorkgroups(ctx, n),
  };
}
