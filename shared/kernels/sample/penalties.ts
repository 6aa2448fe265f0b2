import src from '../../../shaders/sample/penalties.wgsl?raw';
import type { GpuContext } from '../../gpu/context.ts';
import { assembleWgsl, type ProgramCall, splitWorkgroups } from '../../gpu/program.ts';
import { ShapeError } from '../../errors.ts';
import { expectTensor, type Tensor } from '../../gpu/tensor.ts';
import { SamplingError } from './top-k-top-p.ts';

export const PENALTIES = 'sample/penalties';

/** vLLM's penalty settings for one sequence. All-default means "off". */
export interface PenaltySettings {
  /** Divides positive / multiplies non-positive logits of every prompt or output token; > 0, 1 = off. */
  repetition: number;
  /** Subtracted once per occurrence in the output; 0 = off. */
  frequency: number;
  /** Subtracted once from every token present in the output; 0 = off. */
  presence: number;
}

export const NO_PENALTIES: Readonly<PenaltySettings> = Object.freeze({ repetition: 1, frequency: 0, presence: 0 });

/** Throws `SamplingError` unless the settings are usable. */
export function validatePenalties(s: PenaltySettings): void {
  if (!(s.repetition > 0) || !Number.isFinite(s.repetition)) {
    throw new SamplingError(`repetition penalty must be a finite number > 0 (1 = off), got ${s.repetition}`);
  }
  if (!Number.isFinite(s.frequency)) throw new SamplingError(`frequency penalty must be finite, got ${s.frequency}`);
  if (!Number.isFinite(s.presence)) throw new SamplingError(`presence penalty must be finite, got ${s.presence}`);
}

/** True when the settings change nothing (the kernel can be skipped). */
export function penaltiesOff(s: PenaltySettings): boolean {
  return s.repetition === 1 && s.frequency === 0 && s.presence === 0;
}

export interface PenaltiesArgs {
  /** Logits `[rows, V]`, f32, updated in place. */
  logits: Tensor;
  /** CSR row starts `[rows + 1]`, u32: row r owns entries `offsets[r] .. offsets[r + 1] − 1`. */
  offsets: Tensor;
  /** Distinct token ids seen (prompt ∪ output) per row, u32 `[n]`, n ≥ offsets[rows] (extra entries ignored). */
  tokenIds: Tensor;
  /** Output occurrence count of each entry, u32 `[n]` (0 for a prompt-only token). */
  counts: Tensor;
  /** `(repetition, frequency, presence)` per row, f32 `[rows, 3]`. */
  penalty: Tensor;
}

/**
 * Applies vLLM's repetition, then frequency and presence penalties in place to the seen tokens of
 * each row (one workgroup per row, one thread per distinct token). See
 * `shaders/sample/penalties.wgsl` for the semantics and the CSR layout; `PenaltyState`
 * (shared/engine/penalties.ts) builds the arrays.
 *
 * @example
 * const up = state.build([seq]);
 * ctx.run(penalties(ctx, { logits, offsets, tokenIds, counts, penalty })); // then argmax / topKTopP
 */
export function penalties(ctx: GpuContext, args: PenaltiesArgs): ProgramCall {
  const { logits, offsets, tokenIds, counts, penalty } = args;
  expectTensor(logits, `${PENALTIES} logits`, { dtype: 'f32', rank: 2 });
  const [rows, V] = logits.shape;
  expectTensor(offsets, `${PENALTIES} offsets`, { dtype: 'u32', shape: [rows + 1] });
  expectTensor(tokenIds, `${PENALTIES} tokenIds`, { dtype: 'u32', rank: 1 });
  const n = tokenIds.shape[0];
  expectTensor(counts, `${PENALTIES} counts`, { dtype: 'u32', shape: [n] });
  expectTensor(penalty, `${PENALTIES} penalty`, { dtype: 'f32', shape: [rows, 3] });
  if (n < 1) throw new ShapeError(`${PENALTIES} tokenIds must hold at least one entry (pad an empty list)`);
  return {
    info: {
      name: PENALTIES,
      cacheKey: '',
      source: () => assembleWgsl(src),
      access: ['read_write', 'read', 'read', 'read', 'read'],
    },
    bindings: [logits, offsets, tokenIds, counts, penalty],
    uniforms: [{ u32: rows }, { u32: V }, { u32: 0 }, { u32: 0 }],
    workgroups: splitWorkgroups(rows, ctx.caps.limits.maxComputeWorkgroupsPerDimension),
  };
}
