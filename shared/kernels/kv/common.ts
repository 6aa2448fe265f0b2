/**
 * Shape checks shared by the kernels that read or write the paged KV cache.
 *
 *   kCache, vCache [numBlocks, blockSize, Hkv, headDim]   f32, or f16 storage
 *   blockTables    [numSeqs, maxBlocks] u32               row s = block ids of sequence s
 *   slot(s, pos) = blockTables[s, ⌊pos / blockSize⌋]·blockSize + pos % blockSize
 */
import { ShapeError, UnsupportedAdapterError } from '../../errors.ts';
import type { GpuContext } from '../../gpu/context.ts';
import type { DType } from '../../gpu/dtype.ts';
import { expectTensor, type Tensor } from '../../gpu/tensor.ts';

/** Element types the paged cache may be stored in. */
export const CACHE_DTYPES: readonly DType[] = ['f32', 'f16'];

export interface PagedCacheShape {
  numBlocks: number;
  blockSize: number;
  /** KV heads. */
  Hkv: number;
  headDim: number;
  dtype: DType;
}

/**
 * Checks that `kCache` and `vCache` are paged caches of one shape and dtype (f16 only with
 * shader-f16); returns the shape.
 */
export function expectPagedCache(name: string, ctx: GpuContext, kCache: Tensor, vCache: Tensor): PagedCacheShape {
  expectTensor(kCache, `${name} kCache`, { rank: 4, dtype: CACHE_DTYPES });
  const [numBlocks, blockSize, Hkv, headDim] = kCache.shape;
  expectTensor(vCache, `${name} vCache`, { shape: kCache.shape, dtype: kCache.dtype });
  if (kCache.size === 0) throw new ShapeError(`${name}: kCache [${kCache.shape}] is empty`);
  if (kCache.dtype === 'f16' && !ctx.caps.f16) {
    throw new UnsupportedAdapterError(`${name}: an f16 cache needs shader-f16, which this adapter lacks`);
  }
  return { numBlocks, blockSize, Hkv, headDim, dtype: kCache.dtype };
}

/** Checks `[numSeqs, maxBlocks]` u32 block tables; returns the two dimensions. */
export function expectBlockTables(
  name: string,
  blockTables: Tensor,
  numSeqs?: number,
): { numSeqs: number; maxBlocks: number } {
  expectTensor(blockTables, `${name} blockTables`, { shape: [numSeqs, undefined], dtype: 'u32' });
  const [n, maxBlocks] = blockTables.shape;
  if (n === 0 || maxBlocks === 0) throw new ShapeError(`${name}: blockTables [${blockTables.shape}] is empty`);
  return { numSeqs: n, maxBlocks };
}
