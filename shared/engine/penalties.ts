/**
 * Host side of the sampling penalties: per sequence, the distinct tokens seen in the prompt or
 * the output and how often each occurred in the output, kept in growing typed arrays so that a
 * decode step costs O(1) bookkeeping (one increment or one append), plus the CSR upload arrays of
 * `shaders/sample/penalties.wgsl` for any set of sequences.
 *
 * @example
 * const state = new PenaltyState();
 * state.start(seq, promptIds, { repetition: 1.1, frequency: 0, presence: 0.5 });
 * state.push(seq, id); // after each sampled token
 * const up = state.build([seq]); // { offsets, tokenIds, counts, penalty } for the kernel
 */
import { VlmeshError } from '../errors.ts';
import type { GpuContext } from '../gpu/context.ts';
import type { Tensor } from '../gpu/tensor.ts';
import {
  NO_PENALTIES,
  type PenaltySettings,
  penalties,
  penaltiesOff,
  validatePenalties,
} from '../kernels/sample/penalties.ts';

/** A sequence was used before `start`, or started twice. */
export class PenaltyStateError extends VlmeshError {
  constructor(message: string) {
    super('PENALTY_STATE', message);
  }
}

/** The kernel's inputs for a batch of rows (see `penalties()` in shared/kernels/sample). */
export interface PenaltyUpload {
  /** `[rows + 1]` CSR row starts. */
  offsets: Uint32Array;
  /** `[max(1, n)]` distinct ids per row, concatenated (padded to one entry when empty). */
  tokenIds: Uint32Array;
  /** `[max(1, n)]` output counts, aligned with `tokenIds`. */
  counts: Uint32Array;
  /** `[rows, 3]` (repetition, frequency, presence). */
  penalty: Float32Array;
}

/** One sequence's seen tokens: entry i is (ids[i], counts[i]); `index` maps id → i. */
class SeenTokens {
  ids = new Uint32Array(64);
  counts = new Uint32Array(64);
  size = 0;
  readonly index = new Map<number, number>();

  constructor(readonly settings: PenaltySettings) {}

  /** Adds `id` to the set; `output` also counts it. Returns its entry index. */
  add(id: number, output: boolean): number {
    let i = this.index.get(id);
    if (i === undefined) {
      i = this.size++;
      if (i === this.ids.length) {
        const ids = new Uint32Array(2 * i);
        const counts = new Uint32Array(2 * i);
        ids.set(this.ids);
        counts.set(this.counts);
        this.ids = ids;
        this.counts = counts;
      }
      this.ids[i] = id;
      this.index.set(id, i);
    }
    if (output) this.counts[i]++;
    return i;
  }
}

export class PenaltyState {
  private readonly seqs = new Map<number, SeenTokens>();

  /** Registers a sequence with its prompt ids (they get the repetition penalty only). */
  start(seq: number, promptIds: ArrayLike<number>, settings: Partial<PenaltySettings> = {}): void {
    if (this.seqs.has(seq)) throw new PenaltyStateError(`sequence ${seq} is already tracked`);
    const s: PenaltySettings = { ...NO_PENALTIES, ...settings };
    validatePenalties(s);
    const seen = new SeenTokens(s);
    for (let i = 0; i < promptIds.length; i++) seen.add(checkId(promptIds[i]), false);
    this.seqs.set(seq, seen);
  }

  /** Records one generated token of `seq`. */
  push(seq: number, id: number): void {
    this.get(seq).add(checkId(id), true);
  }

  /** Forgets a sequence (no-op when unknown). */
  release(seq: number): void {
    this.seqs.delete(seq);
  }

  has(seq: number): boolean {
    return this.seqs.has(seq);
  }

  /** True when `seq`'s settings change nothing. */
  isOff(seq: number): boolean {
    return penaltiesOff(this.get(seq).settings);
  }

  /** Distinct tokens tracked for `seq`. */
  distinct(seq: number): number {
    return this.get(seq).size;
  }

  /** How often `id` occurred in the output of `seq`. */
  outputCount(seq: number, id: number): number {
    const s = this.get(seq);
    const i = s.index.get(id);
    return i === undefined ? 0 : s.counts[i];
  }

  /**
   * The CSR arrays for the rows `seqs` (row r = seqs[r]): copies of each row's live entries, so
   * the state may keep growing while an upload is pending.
   */
  build(seqs: readonly number[]): PenaltyUpload {
    const rows = seqs.map((q) => this.get(q));
    const offsets = new Uint32Array(rows.length + 1);
    for (let r = 0; r < rows.length; r++) offsets[r + 1] = offsets[r] + rows[r].size;
    const n = Math.max(1, offsets[rows.length]);
    const tokenIds = new Uint32Array(n);
    const counts = new Uint32Array(n);
    const penalty = new Float32Array(rows.length * 3);
    rows.forEach((s, r) => {
      tokenIds.set(s.ids.subarray(0, s.size), offsets[r]);
      counts.set(s.counts.subarray(0, s.size), offsets[r]);
      penalty[r * 3] = s.settings.repetition; // [rows, 3]
      penalty[r * 3 + 1] = s.settings.frequency;
      penalty[r * 3 + 2] = s.settings.presence;
    });
    return { offsets, tokenIds, counts, penalty };
  }

  private get(seq: number): SeenTokens {
    const s = this.seqs.get(seq);
    if (!s) throw new PenaltyStateError(`sequence ${seq} is not tracked (call start first)`);
    return s;
  }
}

function checkId(id: number): number {
  if (!Number.isInteger(id) || id < 0 || id > 0xffffffff) {
    throw new PenaltyStateError(`token id must be a u32, got ${id}`);
  }
  return id;
}

/**
 * Uploads the state of `seqs` and applies the penalties in place to `logits` `[seqs.length, V]`
 * (row r belongs to seqs[r]). Skips the dispatch when no row has a penalty turned on.
 */
export function applyPenalties(ctx: GpuContext, logits: Tensor, state: PenaltyState, seqs: readonly number[]): void {
  if (seqs.every((q) => state.isOff(q))) return;
  const up = state.build(seqs);
  const rows = seqs.length;
  const offsets = ctx.upload(up.offsets, [rows + 1], 'u32', 'penalties.offsets');
  const tokenIds = ctx.upload(up.tokenIds, [up.tokenIds.length], 'u32', 'penalties.ids');
  const counts = ctx.upload(up.counts, [up.counts.length], 'u32', 'penalties.counts');
  const penalty = ctx.upload(up.penalty, [rows, 3], 'f32', 'penalties.settings');
  ctx.run(penalties(ctx, { logits, offsets, tokenIds, counts, penalty }));
  // Safe to recycle now: a pooled buffer is only rewritten after the work encoded so far is submitted.
  for (const t of [offsets, tokenIds, counts, penalty]) t.release();
}
