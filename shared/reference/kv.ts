/**
 * Reference of the paged KV cache (no GPU): slot arithmetic, append, and gathering a sequence's
 * K or V back into a contiguous `[len, Hkv, hd]` array.
 *
 *   cache [numBlocks, blockSize, Hkv, hd]      blockTables [numSeqs, maxBlocks]
 *   slot(seq, pos) = blockTables[seq·maxBlocks + ⌊pos / blockSize⌋]·blockSize + pos % blockSize
 */

export interface PagedLayout {
  numBlocks: number;
  blockSize: number;
  /** KV heads. */
  Hkv: number;
  headDim: number;
  /** Columns of the block tables. */
  maxBlocks: number;
}

/**
 * Cache slot of position `pos` of table row `seq`, or -1 when the position lies past the table
 * or the block id is out of range (the kernels skip such tokens / read zeros).
 */
export function pagedSlot(blockTables: Uint32Array, L: PagedLayout, seq: number, pos: number): number {
  const entry = Math.floor(pos / L.blockSize);
  if (entry >= L.maxBlocks) return -1;
  const block = blockTables[seq * L.maxBlocks + entry];
  if (block >= L.numBlocks) return -1;
  return block * L.blockSize + (pos % L.blockSize);
}

/**
 * Returns a copy of `cache` with row t of `xNew` ([T, Hkv, hd]) written to the slot of
 * (seqIds[t], positions[t]). Tokens with seq ≥ numSeqs (padding) or no slot are skipped.
 */
export function appendPagedRef(a: {
  cache: Float32Array;
  xNew: Float32Array;
  seqIds: Uint32Array;
  positions: Uint32Array;
  blockTables: Uint32Array;
  numSeqs: number;
  layout: PagedLayout;
}): Float32Array {
  const L = a.layout;
  const row = L.Hkv * L.headDim;
  const out = a.cache.slice();
  for (let t = 0; t < a.seqIds.length; t++) {
    if (a.seqIds[t] >= a.numSeqs) continue;
    const slot = pagedSlot(a.blockTables, L, a.seqIds[t], a.positions[t]);
    if (slot < 0) continue;
    out.set(a.xNew.subarray(t * row, (t + 1) * row), slot * row);
  }
  return out;
}

/** Positions 0 .. length−1 of table row `seq`, read from `cache`, as a dense [length, Hkv, hd]. */
export function gatherPagedRef(a: {
  cache: Float32Array;
  blockTables: Uint32Array;
  seq: number;
  length: number;
  layout: PagedLayout;
}): Float32Array {
  const L = a.layout;
  const row = L.Hkv * L.headDim;
  const out = new Float32Array(a.length * row);
  for (let p = 0; p < a.length; p++) {
    const slot = pagedSlot(a.blockTables, L, a.seq, p);
    if (slot < 0) throw new RangeError(`gatherPagedRef: sequence ${a.seq} has no slot for position ${p}`);
    out.set(a.cache.subarray(slot * row, (slot + 1) * row), p * row);
  }
  return out;
}
