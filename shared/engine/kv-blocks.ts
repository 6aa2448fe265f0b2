/**
 * The paged KV block manager: hands out fixed-size cache blocks to sequences, keeps each
 * sequence's block table, and caches full blocks by content so that requests sharing a prefix
 * (the same system prompt, the earlier turns of a conversation, the same image) reuse them.
 *
 *   sequence 7, blockSize 4, 10 tokens:
 *   positions  0 1 2 3 | 4 5 6 7 | 8 9 . .
 *   table      [ 12    ,  3      ,  40    ]      (block ids, any order)
 *   slot(p) = table[floor(p / blockSize)] · blockSize + p % blockSize      slot(9) = 40·4 + 1
 *
 * Blocks are shared by every layer (each layer has its own cache tensors with the same block
 * ids), so one table serves the whole model.
 *
 * Prefix caching (the scheme of vLLM's automatic prefix caching): a FULL block is named by a hash
 * of its tokens and of every block before it (`prefixBlockHashes`), so equal hashes mean equal
 * prefixes and equal cache contents. `commit` records a full block under its hash; a new sequence
 * `adoptPrefix`es the leading blocks whose hashes are known instead of recomputing them. Blocks
 * are reference-counted: a block whose count drops to 0 keeps its contents and its hash and joins
 * an LRU list, from which `grow` takes blocks only when no never-used block is left (evicting the
 * hash). A sequence only ever appends to blocks it owns alone: adopted blocks are full.
 *
 *          refcount > 0                 refcount 0, hashed            refcount 0, no hash
 *   [in use by sequences] ──release──► [evictable LRU (cached)] ──evict──► reused by grow
 *            ▲                                   │                               ▲
 *            └───────────── adoptPrefix ◄────────┘          release (unhashed) ──┘
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

/** Prefix cache counters (blocks). */
export interface PrefixCacheStats {
  /** Full blocks looked up by `adoptPrefix`. */
  queried: number;
  /** Of those, blocks found in the cache and reused. */
  hits: number;
  /** Cached blocks evicted to make room. */
  evictions: number;
}

interface SeqTable {
  blocks: number[];
  length: number;
}

export class KvBlockManager {
  readonly numBlocks: number;
  readonly blockSize: number;
  /** Never-used (or unhashed) blocks with refcount 0; popped from the end (low ids first). */
  private readonly free: number[] = [];
  /** Hashed blocks with refcount 0, least recently released first (Map keeps insertion order). */
  private readonly evictable = new Map<number, true>();
  private readonly refs: Uint32Array;
  private readonly hashOf: (string | undefined)[];
  private readonly byHash = new Map<string, number>();
  private readonly tables = new Map<number, SeqTable>();
  readonly prefixStats: PrefixCacheStats = { queried: 0, hits: 0, evictions: 0 };

  constructor(o: KvBlockManagerOptions) {
    if (!Number.isInteger(o.numBlocks) || o.numBlocks <= 0) throw new RangeError(`numBlocks must be a positive integer, got ${o.numBlocks}`);
    if (!Number.isInteger(o.blockSize) || o.blockSize <= 0) throw new RangeError(`blockSize must be a positive integer, got ${o.blockSize}`);
    this.numBlocks = o.numBlocks;
    this.blockSize = o.blockSize;
    this.refs = new Uint32Array(o.numBlocks);
    this.hashOf = new Array(o.numBlocks);
    for (let b = o.numBlocks - 1; b >= 0; b--) this.free.push(b);
  }

  /** Blocks a sequence could take now (never-used + evictable cached blocks). */
  get freeBlocks(): number {
    return this.free.length + this.evictable.size;
  }

  /** Full blocks currently held under a hash (in use or evictable). */
  get cachedBlocks(): number {
    return this.byHash.size;
  }

  /** Fraction of blocks referenced by some sequence, 0..1 (cached but idle blocks count as free). */
  get usage(): number {
    return 1 - this.freeBlocks / this.numBlocks;
  }

  /** Blocks needed to hold `tokens` tokens. */
  blocksFor(tokens: number): number {
    return Math.ceil(tokens / this.blockSize);
  }

  /** Whether `extra` more tokens fit for `seq` (a new sequence when unknown). */
  canGrow(seq: number, extra: number): boolean {
    return this.blocksNeeded(seq, extra) <= this.freeBlocks;
  }

  /** More blocks `seq` needs to hold `extra` more tokens. */
  blocksNeeded(seq: number, extra: number): number {
    const t = this.tables.get(seq);
    return this.blocksFor((t?.length ?? 0) + extra) - (t?.blocks.length ?? 0);
  }

  private take(): number {
    const b = this.free.pop();
    if (b !== undefined) return b;
    // Evict the least recently released cached block.
    const [oldest] = this.evictable.keys();
    this.evictable.delete(oldest);
    this.byHash.delete(this.hashOf[oldest]!);
    this.hashOf[oldest] = undefined;
    this.prefixStats.evictions++;
    return oldest;
  }

  /**
   * Reserves room for `extra` more tokens of `seq` and returns the positions they take.
   * Throws KvCacheFullError (and changes nothing) when the blocks are not there.
   */
  grow(seq: number, extra: number): { start: number; end: number } {
    let t = this.tables.get(seq);
    const need = this.blocksNeeded(seq, extra);
    if (need > this.freeBlocks) {
      throw new KvCacheFullError(
        `KV cache full: sequence ${seq} needs ${need} more blocks of ${this.blockSize} tokens, ${this.freeBlocks} free of ${this.numBlocks}`,
      );
    }
    if (!t) {
      t = { blocks: [], length: 0 };
      this.tables.set(seq, t);
    }
    for (let i = 0; i < need; i++) {
      const b = this.take();
      this.refs[b] = 1;
      t.blocks.push(b);
    }
    const start = t.length;
    t.length += extra;
    return { start, end: t.length };
  }

  /** How many leading `hashes` are cached now (changes nothing). */
  matchPrefix(hashes: readonly string[]): number {
    let n = 0;
    while (n < hashes.length && this.byHash.has(hashes[n])) n++;
    return n;
  }

  /**
   * Starts the new sequence `seq` with the cached blocks of the leading `hashes` (full blocks of
   * its prompt, see `prefixBlockHashes`) and returns the tokens they hold (a multiple of the block
   * size; 0 on a miss). The caller computes the cache from that position on.
   */
  adoptPrefix(seq: number, hashes: readonly string[]): number {
    if (this.tables.has(seq)) throw new RangeError(`sequence ${seq} already holds blocks`);
    const n = this.matchPrefix(hashes);
    this.prefixStats.queried += hashes.length;
    this.prefixStats.hits += n;
    if (n === 0) return 0;
    const blocks: number[] = [];
    for (let i = 0; i < n; i++) {
      const b = this.byHash.get(hashes[i])!;
      if (this.refs[b] === 0) this.evictable.delete(b);
      this.refs[b]++;
      blocks.push(b);
    }
    this.tables.set(seq, { blocks, length: n * this.blockSize });
    return n * this.blockSize;
  }

  /**
   * Records block `index` of `seq` (which must be full) under `hash`, so later sequences with the
   * same prefix can adopt it. A block already hashed, or a hash already held by another block, is
   * left as it is.
   */
  commit(seq: number, index: number, hash: string): void {
    const t = this.tables.get(seq);
    if (!t || index < 0 || (index + 1) * this.blockSize > t.length) throw new RangeError(`sequence ${seq} has no full block ${index}`);
    const b = t.blocks[index];
    if (this.hashOf[b] !== undefined || this.byHash.has(hash)) return;
    this.hashOf[b] = hash;
    this.byHash.set(hash, b);
  }

  /**
   * A new sequence `dst` that shares the first `fullBlocks` blocks of `src` (each referenced once
   * more). Used to keep a finished conversation's blocks warm (`release(dst)` lets them go).
   */
  fork(src: number, dst: number, fullBlocks: number): void {
    const t = this.tables.get(src);
    if (!t) throw new RangeError(`sequence ${src} is unknown`);
    if (this.tables.has(dst)) throw new RangeError(`sequence ${dst} already holds blocks`);
    const n = Math.min(fullBlocks, Math.floor(t.length / this.blockSize));
    const blocks = t.blocks.slice(0, n);
    for (const b of blocks) this.refs[b]++;
    this.tables.set(dst, { blocks, length: n * this.blockSize });
  }

  /** Tokens held for `seq` (0 when unknown). */
  length(seq: number): number {
    return this.tables.get(seq)?.length ?? 0;
  }

  /** Whether `seq` holds blocks. */
  has(seq: number): boolean {
    return this.tables.has(seq);
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

  /**
   * Drops `seq`'s references. A block nobody references any more becomes free; a hashed one keeps
   * its contents (evictable, the sequence's last blocks evicted first) until `grow` needs it.
   */
  release(seq: number): void {
    const t = this.tables.get(seq);
    if (!t) return;
    for (let i = t.blocks.length - 1; i >= 0; i--) {
      const b = t.blocks[i];
      if (--this.refs[b] > 0) continue;
      if (this.hashOf[b] !== undefined) this.evictable.set(b, true);
      else this.free.push(b);
    }
    this.tables.delete(seq);
  }
}

/** 32-bit mixing step (murmur3's finalizer constants). */
function mix(h: number, k: number): number {
  k = Math.imul(k, 0xcc9e2d51);
  k = (k << 15) | (k >>> 17);
  k = Math.imul(k, 0x1b873593);
  h ^= k;
  h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + 0xe6546b64) | 0;
}

function fmix(h: number, len: number): number {
  h ^= len;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

const SEEDS = [0x9747b28c, 0x2f6b1a3d, 0x5bd1e995, 0x7feb352d];

/** 128-bit hash (four seeded 32-bit lanes) of a u32 word stream, as 32 hex digits. */
function hashWords(words: readonly number[]): string {
  let out = '';
  for (const seed of SEEDS) {
    let h = seed;
    for (const w of words) h = mix(h, w | 0);
    out += fmix(h, words.length).toString(16).padStart(8, '0');
  }
  return out;
}

/**
 * Hash of the full block of `ids` that starts at `start`, chained to `parent` (the previous
 * block's hash, '' for the first block). See `prefixBlockHashes`.
 */
export function blockHash(
  parent: string,
  ids: ArrayLike<number>,
  start: number,
  blockSize: number,
  extraKey?: (pos: number) => string | undefined,
): string {
  const words: number[] = [];
  for (let i = 0; i < parent.length; i += 8) words.push(Number.parseInt(parent.slice(i, i + 8), 16));
  for (let p = start; p < start + blockSize; p++) {
    words.push(ids[p]);
    const extra = extraKey?.(p);
    if (extra !== undefined) {
      words.push(0x80000000 | extra.length);
      for (let i = 0; i < extra.length; i++) words.push(extra.charCodeAt(i));
    }
  }
  return hashWords(words);
}

/**
 * Hashes of the full blocks of a token sequence, each covering its block's tokens and every
 * block before it (the previous hash is part of the input). `extraKey(pos)` adds what the token id
 * alone does not say — for an image pad token, which image (its content hash) and which of its
 * tokens — so two prompts with the same pads but different images never share blocks.
 *
 * Only blocks fully inside `ids` get a hash; pass `ids` up to where a block may be adopted.
 */
export function prefixBlockHashes(ids: ArrayLike<number>, blockSize: number, extraKey?: (pos: number) => string | undefined): string[] {
  const out: string[] = [];
  let parent = '';
  for (let b = 0; (b + 1) * blockSize <= ids.length; b++) {
    parent = blockHash(parent, ids, b * blockSize, blockSize, extraKey);
    out.push(parent);
  }
  return out;
}
