/**
 * Paged KV cache kernels. Layout per layer: kCache, vCache `[numBlocks, blockSize, Hkv, hd]`;
 * a sequence's block table lists its blocks in position order (see `shared/engine/kv-blocks.ts`
 * for the host side). Attention that reads the cache lives in `../attention/`.
 */
export { APPEND_PAGED, type AppendPagedArgs, appendPaged, NO_SEQ } from './append-paged.ts';
export { CACHE_DTYPES, expectBlockTables, expectPagedCache, type PagedCacheShape } from './common.ts';
