import src from '../../../shaders/attention/flash-prefill.wgsl?raw';
import { ShapeError } from '../../errors.ts';
import type { GpuContext } from '../../gpu/context.ts';
import { assembleWgsl, type ProgramCall } from '../../gpu/program.ts';
import type { Tensor } from '../../gpu/tensor.ts';
import { constU32 } from '../header.ts';
import { attentionScale, expectHeads, expectWorkgroups, gqaGroup, rowTile } from './common.ts';

export const FLASH_PREFILL = 'attention/flash-prefill';

export interface FlashPrefillArgs {
  /** Queries `[T, Hq, hd]` f32: the last T of the S positions. */
  q: Tensor;
  /** Keys `[S, Hkv, hd]` f32, S ≥ T, Hq a multiple of Hkv. */
  k: Tensor;
  /** Values `[S, Hkv, hd]` f32. */
  v: Tensor;
  /** Output `[T, Hq, hd]` f32. */
  out: Tensor;
  /** Softmax scale; default hd^-0.5. */
  scale?: number;
}

/**
 * Causal GQA attention of T queries at positions S−T .. S−1 over S contiguous keys, tiled with
 * an online softmax. See the header of `shaders/attention/flash-prefill.wgsl`.
 *
 * @example
 * ctx.run(flashPrefill(ctx, { q, k, v, out })); // q [T, 16, 128], k, v [T, 8, 128]
 */
export function flashPrefill(ctx: GpuContext, args: FlashPrefillArgs): ProgramCall {
  const name = FLASH_PREFILL;
  const { rows: T, heads: Hq, headDim } = expectHeads(name, 'q', args.q);
  const { rows: S, heads: Hkv } = expectHeads(name, 'k', args.k, [undefined, undefined, headDim]);
  expectHeads(name, 'v', args.v, [S, Hkv, headDim]);
  expectHeads(name, 'out', args.out, [T, Hq, headDim]);
  if (S < T) throw new ShapeError(`${name}: ${S} keys for ${T} queries; the queries must be the last T of the S keys`);
  const group = gqaGroup(name, Hq, Hkv);
  const { BQ, BK } = rowTile(name, ctx, headDim);
  const tiles = Math.ceil((T * group) / BQ);
  expectWorkgroups(name, ctx, 'query rows', tiles);
  return {
    info: {
      name,
      cacheKey: `hd=${headDim}:bq=${BQ}:bk=${BK}`,
      source: () => assembleWgsl(constU32('HD', headDim), constU32('BQ', BQ), constU32('BK', BK), src),
      access: ['read', 'read', 'read', 'read_write'],
    },
    bindings: [args.q, args.k, args.v, args.out],
    uniforms: [
      { u32: T },
      { u32: S },
      { u32: Hq },
      { u32: Hkv },
      { u32: group },
      { f32: attentionScale(name, headDim, args.scale) },
      { u32: 0 },
      { u32: 0 },
    ],
    workgroups: [tiles, Hkv, 1],
  };
}
