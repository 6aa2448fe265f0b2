/**
 * The BPE model: vocabulary, ranked merges, and the merge loop that turns one pre-tokenized word
 * into token ids.
 *
 * Merge loop (same result as Hugging Face's `BPE::merge_word`): start from one symbol per
 * character; repeatedly merge the adjacent pair with the lowest merge rank, leftmost first,
 * until no adjacent pair has a merge.
 *
 *   "Ġlower"  → Ġ l o w e r → Ġl o w e r → Ġl ow e r → Ġl ow er → Ġlow er → Ġlower
 *
 * Pairs live in a min-heap keyed by (rank, position) over a doubly linked list of symbols, so a
 * long word costs O(n log n) rather than O(n²). Heap entries are validated when popped: a stale
 * entry (one of its symbols was merged away) no longer has its rank at that position.
 */
import { TokenizerConfigError } from './errors.ts';

/** Ids are below 2^21, so a pair (a, b) packs into one safe integer. */
const PAIR_SHIFT = 2 ** 21;
/** Positions in a word are below 2^32; (rank, pos) packs into one safe integer. */
const POS_SHIFT = 2 ** 32;
/** Cached words before the cache is cleared (bounds memory on long-running servers). */
const CACHE_LIMIT = 100_000;

export interface BpeModelJson {
  type: 'BPE';
  vocab: Record<string, number>;
  merges: (string | [string, string])[];
  unk_token?: string | null;
  continuing_subword_prefix?: string | null;
  end_of_word_suffix?: string | null;
  fuse_unk?: boolean;
  byte_fallback?: boolean;
  dropout?: number | null;
  ignore_merges?: boolean;
}

export class BpeModel {
  /** token string → id (model vocabulary only, not the added tokens). */
  readonly vocab: Map<string, number>;
  /** id → token string; holes are undefined. */
  readonly vocabR: string[];
  private readonly ranks = new Map<number, number>();
  private readonly mergedId: Int32Array;
  private readonly unkId: number;
  private readonly ignoreMerges: boolean;
  private readonly cache = new Map<string, readonly number[]>();

  constructor(json: BpeModelJson) {
    if (json.type !== 'BPE') throw new TokenizerConfigError(`model type ${json.type} is not supported (only BPE)`);
    if (json.dropout) throw new TokenizerConfigError('BPE dropout is not supported');
    if (json.byte_fallback) throw new TokenizerConfigError('BPE byte_fallback is not supported');
    if (json.continuing_subword_prefix || json.end_of_word_suffix) {
      throw new TokenizerConfigError('BPE continuing_subword_prefix / end_of_word_suffix are not supported');
    }
    this.vocab = new Map();
    this.vocabR = [];
    for (const tok in json.vocab) {
      const id = json.vocab[tok];
      if (!Number.isInteger(id) || id < 0 || id >= PAIR_SHIFT) throw new TokenizerConfigError(`bad id ${id} for "${tok}"`);
      this.vocab.set(tok, id);
      this.vocabR[id] = tok;
    }
    this.unkId = json.unk_token != null ? (this.vocab.get(json.unk_token) ?? -1) : -1;
    this.ignoreMerges = json.ignore_merges === true;
    this.mergedId = new Int32Array(json.merges.length);
    for (let rank = 0; rank < json.merges.length; rank++) {
      const m = json.merges[rank];
      let a: string;
      let b: string;
      if (typeof m === 'string') {
        const sp = m.indexOf(' ');
        if (sp < 0 || m.indexOf(' ', sp + 1) >= 0) throw new TokenizerConfigError(`merge ${rank} "${m}" is not "a b"`);
        a = m.slice(0, sp);
        b = m.slice(sp + 1);
      } else {
        [a, b] = m;
      }
      const ia = this.vocab.get(a);
      const ib = this.vocab.get(b);
      const iab = this.vocab.get(a + b);
      if (ia === undefined || ib === undefined || iab === undefined) {
        throw new TokenizerConfigError(`merge ${rank} (${a}, ${b}) uses a token missing from the vocabulary`);
      }
      // A repeated pair keeps its last rank, as when Hugging Face collects the merges into a map.
      this.ranks.set(ia * PAIR_SHIFT + ib, rank);
      this.mergedId[rank] = iab;
    }
  }

  /** Ids of one pre-tokenized word (already byte-level mapped). Cached. */
  encodeWord(word: string): readonly number[] {
    const hit = this.cache.get(word);
    if (hit) return hit;
    const ids = this.merge(word);
    if (this.cache.size >= CACHE_LIMIT) this.cache.clear();
    this.cache.set(word, ids);
    return ids;
  }

  private merge(word: string): number[] {
    if (this.ignoreMerges) {
      const whole = this.vocab.get(word);
      if (whole !== undefined) return [whole];
    }
    // Initial symbols: one per code point.
    const sym: number[] = [];
    for (const ch of word) {
      const id = this.vocab.get(ch);
      if (id !== undefined) sym.push(id);
      else if (this.unkId >= 0) sym.push(this.unkId);
      // else: Hugging Face drops characters it cannot map when there is no unk token.
    }
    const n = sym.length;
    if (n < 2) return sym;
    if (n === 2) {
      const r = this.ranks.get(sym[0] * PAIR_SHIFT + sym[1]);
      return r === undefined ? sym : [this.mergedId[r]];
    }
    const next = new Int32Array(n);
    const prev = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      next[i] = i + 1 < n ? i + 1 : -1;
      prev[i] = i - 1;
    }
    const heap = new MinHeap();
    for (let i = 0; i + 1 < n; i++) {
      const r = this.ranks.get(sym[i] * PAIR_SHIFT + sym[i + 1]);
      if (r !== undefined) heap.push(r * POS_SHIFT + i);
    }
    const alive = new Uint8Array(n).fill(1);
    while (heap.size > 0) {
      const top = heap.pop();
      const rank = Math.floor(top / POS_SHIFT);
      const pos = top - rank * POS_SHIFT;
      if (!alive[pos]) continue;
      const right = next[pos];
      if (right < 0) continue;
      if (this.ranks.get(sym[pos] * PAIR_SHIFT + sym[right]) !== rank) continue;
      // Merge `right` into `pos`.
      sym[pos] = this.mergedId[rank];
      alive[right] = 0;
      const after = next[right];
      next[pos] = after;
      if (after >= 0) prev[after] = pos;
      const before = prev[pos];
      if (before >= 0) {
        const r = this.ranks.get(sym[before] * PAIR_SHIFT + sym[pos]);
        if (r !== undefined) heap.push(r * POS_SHIFT + before);
      }
      if (after >= 0) {
        const r = this.ranks.get(sym[pos] * PAIR_SHIFT + sym[after]);
        if (r !== undefined) heap.push(r * POS_SHIFT + pos);
      }
    }
    const out: number[] = [];
    for (let i = 0; i >= 0; i = next[i]) out.push(sym[i]);
    return out;
  }
}

/** A binary min-heap of non-negative safe integers. */
class MinHeap {
  private a: number[] = [];
  get size(): number {
    return this.a.length;
  }
  push(v: number): void {
    const a = this.a;
    let i = a.length;
    a.push(v);
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (a[p] <= v) break;
      a[i] = a[p];
      i = p;
    }
    a[i] = v;
  }
  pop(): number {
    const a = this.a;
    const top = a[0];
    const last = a.pop()!;
    const n = a.length;
    if (n > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= n) break;
        const r = l + 1;
        const c = r < n && a[r] < a[l] ? r : l;
        if (a[c] >= last) break;
        a[i] = a[c];
        i = c;
      }
      a[i] = last;
    }
    return top;
  }
}
