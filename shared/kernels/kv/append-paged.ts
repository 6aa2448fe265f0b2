import src from '../../../shaders/kv/append-paged.wgsl?raw';
import { ShapeError } from '../../errors.ts';
import type { GpuContext } from '../../gpu/context.ts';
import { assembleWgsl, type ProgramCall, splitWorkgroups } from '../../gpu/program.ts';
import { expectTensor, type Tensor } from '../../gpu/tensor.ts';
import { alias, enables } from '../header.ts';
import { expectBlockTables, expectPagedCache } from './common.ts';

export const APPEND_PAGED = 'kv/append-paged';

/** Seq id of a padding token: `appendPaged` skips it. */
export const NO_SEQ = 0xffffffff;

const WORKGROUP = 256;

export interface AppendPagedArgs {
  /** Keys of the new tokens `[T, Hkv, hd]` f32. */
  kNew: Tensor;
  /** Values of the new tokens `[T, Hkv, hd]` f32. */
  vNew: Tensor;
  /** Row of `blockTables` each token belongs to, `[T]` u32; `NO_SEQ` skips the token. */
  seqIds: Tensor;
  /** Absolute position of each token in its sequence, `[T]` u32. */
  positions: Tensor;
  /** Block tables `[numSeqs, maxBlocks]` u32. */
  blockTables: Tensor;
  /** Paged cache `[numBlocks, blockSize, Hkv, hd]`, f32 or f16 (f16 needs `ctx.caps.f16`). */
  kCache: Tensor;
  vCache: Tensor;
}

/**
 * Writes the K/V rows of T new tokens (of any sequences) into their cache slots
 * `blockTables[seq, pos / blockSize]·blockSize + pos % blockSize`, converting to the cache dtype.
 * Tokens whose table entry or block id is out of range are skipped. See the header of
 * `shaders/kv/append-paged.wgsl`.
 *
 * @example
 * // decode step of 3 sequences (rows 0, 1, 2 of the tables) at positions 17, 4, 250
 * ctx.run(appendPaged(ctx, { kNew, vNew, seqIds, positions, blockTables, kCache, vCache }));
 */
export function appendPaged(ctx: GpuContext, args: AppendPagedArgs): ProgramCall {
  const name = APPEND_PAGED;
  const cache = expectPagedCache(name, ctx, args.kCache, args.vCache);
  expectTensor(args.kNew, `${name} kNew`, { rank: 3, dtype: 'f32', shape: [undefined, cache.Hkv, cache.headDim] });
  const T = args.kNew.shape[0];
  if (T === 0) throw new ShapeError(`${name}: kNew [${args.kNew.shape}] holds no token`);
  expectTensor(args.vNew, `${name} vNew`, { dtype: 'f32', shape: args.kNew.shape });
  expectTensor(args.seqIds, `${name} seqIds`, { dtype: 'u32', shape: [T] });
  expectTensor(args.positions, `${name} positions`, { dtype: 'u32', shape: [T] });
  const { numSeqs, maxBlocks } = expectBlockTables(name, args.blockTables);
  const rowLen = cache.Hkv * cache.headDim;
  const kt = cache.dtype;
  return {
    info: {
      name,
      cacheKey: kt,
      source: () => assembleWgsl(enables(kt), alias('KT', kt), src),
      access: ['read', 'read', 'read', 'read', 'read', 'read_write', 'read_write'],
    },
    bindings: [args.kNew, args.vNew, args.seqIds, args.positions, args.blockTables, args.kCache, args.vCache],
    uniforms: [
      { u32: T },
      { u32: rowLen },
      { u32: cache.blockSize },
      { u32: maxBlocks },
      { u32: numSeqs },
      { u32: cache.numBlocks },
      { u32: 0 },
      { u32: 0 },
    ],
    workgroups: splitWorkgroups(Math.ceil((T * rowLen) / WORKGROUP), ctx.caps.limits.maxComputeWorkgroupsPerDimension),
  };
}
