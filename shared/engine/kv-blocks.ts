/**
 * The paged KV block manager: hands out fixed-size cache blocks to sequences and keeps each
 * sequence's block table.
 *
 *   sequence 7, blockSize 4, 10 tokens:
 *   positions  0 1 2 3 | 4 5 6 7 | 8 9 . .
 *   table      [ 12    ,  3      ,  40    ]      (block ids, any order)
 *   slot(p) = table[floor(p / blockSize)] · blockSize + p % blockSize      slot(9) = 40·4 + 1
 *
 * Blocks are shared by every layer (each layer has its own cache tensors with the same block
 * ids), so one table serves the whole model.
 */
import { VlmeshError } from '../errors.ts';

/** No free block is left: the caller preempts a sequence or queues the request. */
export class KvCacheFullError extends VlmeshError {
  constructor(message: string) {
    super('KV_CACHE_FULL', message);
  }
}

export interface KvBlockManagerOptions {
  numBlocks: number;
  blockSize: number;
}

export class KvBlockManager {
  readonly numBlocks: number;
  readonly blockSize: number;
  private readonly free: number[] = [];
  private readonly tables = new Map<number, { blocks: number[]; length: number }>();

  constructor(o: KvBlockManagerOptions) {
    if (!Number.isInteger(o.numBlocks) || o.numBlocks <= 0) throw new RangeError(`numBlocks must be a positive integer, got ${o.numBlocks}`);
    if (!Number.isInteger(o.blockSize) || o.blockSize <= 0) throw new RangeError(`blockSize must be a positive integer, got ${o.blockSize}`);
    this.numBlocks = o.numBlocks;
    this.blockSize = o.blockSize;
    // Pop from the end: low block ids first.
    for (let b = o.numBlocks - 1; b >= 0; b--) this.free.push(b);
  }

  get freeBlocks(): number {
    return this.free.length;
  }

  /** Fraction of blocks in use, 0..1. */
  get usage(): number {
    return 1 - this.free.length / this.numBlocks;
  }

  /** Blocks needed to hold `tokens` tokens. */
  blocksFor(tokens: number): number {
    return Math.ceil(tokens / this.blockSize);
  }

  /** Whether `extra` more tokens fit for `seq` (a new sequence when unknown). */
  canGrow(seq: number, extra: number): boolean {
    const t = this.tables.get(seq);
    const len = t?.length ?? 0;
    const have = t?.blocks.length ?? 0;
    return this.blocksFor(len + extra) - have <= this.free.length;
  }

  /**
   * Reserves room for `extra` more tokens of `seq` and returns the positions they take.
   * Throws KvCacheFullError (and changes nothing) when the blocks are not there.
   */
  grow(seq: number, extra: number): { start: number; end: number } {
    let t = this.tables.get(seq);
    if (!t) {
      t = { blocks: [], length: 0 };
      this.tables.set(seq, t);
    }
    const need = this.blocksFor(t.length + extra) - t.blocks.length;
    if (need > this.free.length) {
      if (t.length === 0 && t.blocks.length === 0) this.tables.delete(seq);
      throw new KvCacheFullError(
        `KV cache full: sequence ${seq} needs ${need} more blocks of ${this.blockSize} tokens, ${this.free.length} free of ${this.numBlocks}`,
      );
    }
    for (let i = 0; i < need; i++) t.blocks.push(this.free.pop()!);
    const start = t.length;
    t.length += extra;
    return { start, end: t.length };
  }

  /** Tokens held for `seq` (0 when unknown). */
  length(seq: number): number {
    return this.tables.get(seq)?.length ?? 0;
  }

  /** The block ids of `seq`, in position order. */
  blocks(seq: number): readonly number[] {
    return this.tables.get(seq)?.blocks ?? [];
  }

  /** Cache slot of position `pos` of `seq`. */
  slot(seq: number, pos: number): number {
    const t = this.tables.get(seq);
    if (!t || pos < 0 || pos >= t.length) throw new RangeError(`sequence ${seq} has no position ${pos}`);
    return t.blocks[Math.floor(pos / this.blockSize)] * this.blockSize + (pos % this.blockSize);
  }

  /**
   * Block tables of `seqs` as one [seqs.length, width] u32 array (rows padded with 0), with
   * width = the longest table (at least 1).
   */
  tableArray(seqs: readonly number[]): { data: Uint32Array; width: number } {
    let width = 1;
    for (const s of seqs) width = Math.max(width, this.blocks(s).length);
    const data = new Uint32Array(seqs.length * width);
    seqs.forEach((s, i) => {
      data.set(this.blocks(s), i * width);
    });
    return { data, width };
  }

  /** Frees every block of `seq`. */
  release(seq: number): void {
    const t = this.tables.get(seq);
    if (!t) return;
    for (let i = t.blocks.length - 1; i >= 0; i--) this.free.push(t.blocks[i]);
    this.tables.delete(seq);
  }
}
