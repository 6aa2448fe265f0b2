import src from '../../../shaders/attention/vision-varlen.wgsl?raw';
import { ShapeError } from '../../errors.ts';
import type { GpuContext } from '../../gpu/context.ts';
import { assembleWgsl, type ProgramCall } from '../../gpu/program.ts';
import { expectTensor, type Tensor } from '../../gpu/tensor.ts';
import { constU32 } from '../header.ts';
import { attentionScale, expectHeads, expectWorkgroups, rowTile } from './common.ts';

export const VISION_VARLEN = 'attention/vision-varlen';

export interface VisionVarlenArgs {
  /** Queries `[P, H, hd]` f32 (all patches of all images / video frames, concatenated). */
  q: Tensor;
  /** Keys `[P, H, hd]` f32. */
  k: Tensor;
  /** Values `[P, H, hd]` f32. */
  v: Tensor;
  /**
   * Segment boundaries `[nseg + 1]` u32: 0 = cu[0] < cu[1] < … < cu[nseg] = P. Segment s holds
   * patches cu[s] .. cu[s+1]−1 (one image, or one temporal patch of a video). The kernel trusts
   * these values; malformed ones give wrong numbers but no out-of-range access.
   */
  cuSeqlens: Tensor;
  /** Output `[P, H, hd]` f32. */
  out: Tensor;
  /** Softmax scale; default hd^-0.5. */
  scale?: number;
}

/**
 * Bidirectional attention restricted to each patch's own segment (block-diagonal mask), tiled
 * with an online softmax. See the header of `shaders/attention/vision-varlen.wgsl`.
 *
 * @example
 * // two images of 64 and 100 patches, 16 heads of 64
 * const cu = ctx.upload(new Uint32Array([0, 64, 164]), [3], 'u32', 'cu_seqlens');
 * ctx.run(visionVarlen(ctx, { q, k, v, cuSeqlens: cu, out }));
 */
export function visionVarlen(ctx: GpuContext, args: VisionVarlenArgs): ProgramCall {
  const name = VISION_VARLEN;
  const { rows: P, heads: H, headDim } = expectHeads(name, 'q', args.q);
  expectHeads(name, 'k', args.k, [P, H, headDim]);
  expectHeads(name, 'v', args.v, [P, H, headDim]);
  expectHeads(name, 'out', args.out, [P, H, headDim]);
  expectTensor(args.cuSeqlens, `${name} cuSeqlens`, { rank: 1, dtype: 'u32' });
  const nseg = args.cuSeqlens.shape[0] - 1;
  if (nseg < 1) throw new ShapeError(`${name}: cuSeqlens [${args.cuSeqlens.shape}] must hold at least one segment (2 values)`);
  const { BQ, BK } = rowTile(name, ctx, headDim);
  const tiles = Math.ceil(P / BQ);
  expectWorkgroups(name, ctx, 'patch rows', tiles);
  return {
    info: {
      name,
      cacheKey: `hd=${headDim}:bq=${BQ}:bk=${BK}`,
      source: () => assembleWgsl(constU32('HD', headDim), constU32('BQ', BQ), constU32('BK', BK), src),
      access: ['read', 'read', 'read', 'read', 'read_write'],
    },
    bindings: [args.q, args.k, args.v, args.cuSeqlens, args.out],
    uniforms: [{ u32: P }, { u32: H }, { u32: nseg }, { f32: attentionScale(name, headDim, args.scale) }],
    workgroups: [tiles, H, 1],
  };
}
