import src from '../../../shaders/attention/decode-paged.wgsl?raw';
import io from '../../../shaders/common/decode-attention-io.wgsl?raw';
import { ShapeError } from '../../errors.ts';
import type { GpuContext } from '../../gpu/context.ts';
import { assembleWgsl, type ProgramCall } from '../../gpu/program.ts';
import { expectTensor, type Tensor } from '../../gpu/tensor.ts';
import { alias, constU32, enables } from '../header.ts';
import { expectBlockTables, expectPagedCache } from '../kv/common.ts';
import { attentionScale, decodeChunk, expectHeads, expectWorkgroups, gqaGroup } from './common.ts';

export const DECODE_PAGED = 'attention/decode-paged';

export interface DecodePagedArgs {
  /** One query per sequence: `[numSeqs, Hq, hd]` f32. Its K/V must already be in the cache. */
  q: Tensor;
  /** Context length of each sequence (keys 0 .. len−1, the new token included): `[numSeqs]` u32. */
  contextLens: Tensor;
  /** Block tables `[numSeqs, maxBlocks]` u32 (row s = block ids of sequence s, in position order). */
  blockTables: Tensor;
  /** Paged cache `[numBlocks, blockSize, Hkv, hd]`, f32 or f16. */
  kCache: Tensor;
  vCache: Tensor;
  /** Output `[numSeqs, Hq, hd]` f32. */
  out: Tensor;
  /** Softmax scale; default hd^-0.5. */
  scale?: number;
}

/**
 * Decode attention of one query per sequence over its paged K/V, GQA; sequences of different
 * lengths in one dispatch (a length of 0 writes zeros). See the header of
 * `shaders/attention/decode-paged.wgsl`.
 *
 * @example
 * ctx.run(appendPaged(ctx, { kNew, vNew, seqIds, positions, blockTables, kCache, vCache }));
 * ctx.run(decodePaged(ctx, { q, contextLens, blockTables, kCache, vCache, out }));
 */
export function decodePaged(ctx: GpuContext, args: DecodePagedArgs): ProgramCall {
  const name = DECODE_PAGED;
  const d = resolveDecode(name, ctx, args);
  const BK = decodeChunk(name, ctx, d.headDim, d.group);
  const kt = d.cacheDtype;
  return {
    info: {
      name,
      cacheKey: `${kt}:hd=${d.headDim}:group=${d.group}:bk=${BK}`,
      source: () =>
        assembleWgsl(
          enables(kt),
          alias('KT', kt),
          constU32('HD', d.headDim),
          constU32('GROUP', d.group),
          constU32('BK', BK),
          io,
          src,
        ),
      access: ['read', 'read', 'read', 'read', 'read', 'read_write'],
    },
    bindings: d.bindings,
    uniforms: d.uniforms,
    workgroups: [d.Hkv, d.numSeqs, 1],
  };
}

/** What every decode-attention kernel checks and binds (the arguments of `decodePaged`; `shaders/common/decode-attention-io.wgsl`). */
export function resolveDecode(name: string, ctx: GpuContext, args: DecodePagedArgs) {
  const { rows: numSeqs, heads: Hq, headDim } = expectHeads(name, 'q', args.q);
  const cache = expectPagedCache(name, ctx, args.kCache, args.vCache);
  if (cache.headDim !== headDim) {
    throw new ShapeError(`${name}: q has head_dim ${headDim}, the cache [${args.kCache.shape}] has ${cache.headDim}`);
  }
  const { maxBlocks } = expectBlockTables(name, args.blockTables, numSeqs);
  expectTensor(args.contextLens, `${name} contextLens`, { shape: [numSeqs], dtype: 'u32' });
  expectHeads(name, 'out', args.out, [numSeqs, Hq, headDim]);
  const group = gqaGroup(name, Hq, cache.Hkv);
  expectWorkgroups(name, ctx, 'sequences', numSeqs);
  const uniforms: ProgramCall['uniforms'] = [
    { u32: Hq },
    { u32: cache.Hkv },
    { u32: cache.blockSize },
    { u32: maxBlocks },
    { u32: cache.numBlocks },
    { f32: attentionScale(name, headDim, args.scale) },
    { u32: 0 },
    { u32: 0 },
  ];
  const bindings = [args.q, args.contextLens, args.blockTables, args.kCache, args.vCache, args.out];
  return { numSeqs, Hq, Hkv: cache.Hkv, headDim, group, cacheDtype: cache.dtype, uniforms, bindings };
}
