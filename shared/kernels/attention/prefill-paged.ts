import src from '../../../shaders/attention/prefill-paged.wgsl?raw';
import { ShapeError } from '../../errors.ts';
import type { GpuContext } from '../../gpu/context.ts';
import { assembleWgsl, type ProgramCall } from '../../gpu/program.ts';
import type { Tensor } from '../../gpu/tensor.ts';
import { alias, constU32, enables } from '../header.ts';
import { expectBlockTables, expectPagedCache } from '../kv/common.ts';
import { attentionScale, expectHeads, expectWorkgroups, gqaGroup, rowTile } from './common.ts';

export const PREFILL_PAGED = 'attention/prefill-paged';

export interface PrefillPagedArgs {
  /** Queries of the chunk `[T, Hq, hd]` f32, at absolute positions start .. start+T−1. */
  q: Tensor;
  /** Block tables `[numSeqs, maxBlocks]` u32. */
  blockTables: Tensor;
  /** Row of `blockTables` this chunk belongs to. */
  seq: number;
  /** Tokens of the sequence before this chunk (already in the cache). */
  start: number;
  /** Paged cache `[numBlocks, blockSize, Hkv, hd]`, f32 or f16, holding positions 0 .. start+T−1. */
  kCache: Tensor;
  vCache: Tensor;
  /** Output `[T, Hq, hd]` f32. */
  out: Tensor;
  /** Softmax scale; default hd^-0.5. */
  scale?: number;
}

/**
 * Causal GQA attention of a prompt chunk over the cached prefix and itself, keys read through
 * the block table (chunked prefill). See the header of `shaders/attention/prefill-paged.wgsl`.
 *
 * @example
 * // chunk of 512 tokens after 1024 cached ones, sequence row 0
 * ctx.run(appendPaged(ctx, { kNew, vNew, seqIds, positions, blockTables, kCache, vCache }));
 * ctx.run(prefillPaged(ctx, { q, blockTables, seq: 0, start: 1024, kCache, vCache, out }));
 */
export function prefillPaged(ctx: GpuContext, args: PrefillPagedArgs): ProgramCall {
  const name = PREFILL_PAGED;
  const { rows: T, heads: Hq, headDim } = expectHeads(name, 'q', args.q);
  const cache = expectPagedCache(name, ctx, args.kCache, args.vCache);
  if (cache.headDim !== headDim) {
    throw new ShapeError(`${name}: q has head_dim ${headDim}, the cache [${args.kCache.shape}] has ${cache.headDim}`);
  }
  const { numSeqs, maxBlocks } = expectBlockTables(name, args.blockTables);
  expectHeads(name, 'out', args.out, [T, Hq, headDim]);
  const { seq, start } = args;
  if (!Number.isInteger(seq) || seq < 0 || seq >= numSeqs) {
    throw new ShapeError(`${name}: seq ${seq} is not a row of blockTables [${args.blockTables.shape}]`);
  }
  if (!Number.isInteger(start) || start < 0) throw new ShapeError(`${name}: start must be a non-negative integer, got ${start}`);
  if (start + T > maxBlocks * cache.blockSize) {
    throw new ShapeError(
      `${name}: positions up to ${start + T - 1} need ${Math.ceil((start + T) / cache.blockSize)} blocks of ${cache.blockSize}; blockTables rows hold ${maxBlocks}`,
    );
  }
  const group = gqaGroup(name, Hq, cache.Hkv);
  const { BQ, BK } = rowTile(name, ctx, headDim);
  const tiles = Math.ceil((T * group) / BQ);
  expectWorkgroups(name, ctx, 'query rows', tiles);
  const kt = cache.dtype;
  return {
    info: {
      name,
      cacheKey: `${kt}:hd=${headDim}:bq=${BQ}:bk=${BK}`,
      source: () =>
        assembleWgsl(
          enables(kt),
          alias('KT', kt),
          constU32('HD', headDim),
          constU32('BQ', BQ),
          constU32('BK', BK),
          src,
        ),
      access: ['read', 'read', 'read', 'read', 'read_write'],
    },
    bindings: [args.q, args.blockTables, args.kCache, args.vCache, args.out],
    uniforms: [
      { u32: T },
      { u32: start },
      { u32: Hq },
      { u32: cache.Hkv },
      { u32: group },
      { u32: cache.blockSize },
      { u32: maxBlocks },
      { u32: cache.numBlocks },
      { u32: seq },
      { f32: attentionScale(name, headDim, args.scale) },
      { u32: 0 },
      { u32: 0 },
    ],
    workgroups: [tiles, cache.Hkv, 1],
  };
}
