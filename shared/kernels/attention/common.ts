/**
 * Pieces shared by the attention kernels: argument checks, the softmax scale, and the tile sizes
 * that keep a workgroup's tiles within the workgroup-memory budget.
 */
import { ShapeError } from '../../errors.ts';
import type { GpuContext } from '../../gpu/context.ts';
import { expectTensor, type Tensor } from '../../gpu/tensor.ts';

/**
 * Workgroup memory a kernel may use: 16 KiB, the WebGPU default limit (every adapter has at
 * least this), or less if the device reports less.
 */
export function workgroupMemoryBudget(ctx: GpuContext): number {
  return Math.min(16384, ctx.caps.limits.maxComputeWorkgroupStorageSize);
}

/** Keys per tile of the row-tiled kernels (= threads per query row). */
export const KEY_TILE = 16;
/** Most query rows per workgroup of the row-tiled kernels (BQ·BK ≤ 256 invocations). */
export const MAX_ROW_TILE = 16;

/**
 * Tile of the row-tiled kernels (flash-prefill, vision-varlen, prefill-paged) for a head_dim:
 * BK = 16 keys per tile and the most query rows BQ ≤ 16 whose workgroup arrays fit the budget:
 * q [BQ, hd] + K/V [BK, hd+1] + scores and probabilities [BQ, BK] ×2 + slots [BK], 4 bytes each.
 * hd 16, 64, 72 → BQ 16 (256 threads); hd 128 → BQ 12 (192 threads).
 */
export function rowTile(name: string, ctx: GpuContext, headDim: number): { BQ: number; BK: number } {
  const BK = KEY_TILE;
  const words = workgroupMemoryBudget(ctx) / 4;
  const BQ = Math.min(MAX_ROW_TILE, Math.floor((words - BK * (headDim + 1) - BK) / (headDim + 2 * BK)));
  if (BQ < 1) {
    throw new ShapeError(`${name}: head_dim ${headDim} is too large for the ${words * 4}-byte workgroup tiles`);
  }
  return { BQ, BK };
}

/**
 * Keys per chunk of attention/decode-paged: the largest of 32, 16, 8, 4 whose arrays fit:
 * q [G, hd] + K/V [BK, hd+1] + p [G, BK] + slots [BK] + 3 per-head scalars [G].
 * hd 128 with G ≤ 8 → 16; hd 16 → 32.
 */
export function decodeChunk(name: string, ctx: GpuContext, headDim: number, group: number): number {
  const words = workgroupMemoryBudget(ctx) / 4;
  for (const BK of [32, 16, 8, 4]) {
    if (group * headDim + BK * (headDim + 1) + group * BK + BK + 3 * group <= words) return BK;
  }
  throw new ShapeError(
    `${name}: ${group} query heads per KV head with head_dim ${headDim} do not fit the ${words * 4}-byte workgroup tiles`,
  );
}

/** The softmax scale: `scale` when given, else head_dim^-0.5. */
export function attentionScale(name: string, headDim: number, scale?: number): number {
  const s = scale ?? 1 / Math.sqrt(headDim);
  if (!Number.isFinite(s)) throw new ShapeError(`${name}: scale must be finite, got ${s}`);
  return s;
}

/** Throws unless every value is a positive integer. */
export function expectPositive(name: string, values: Record<string, number>): void {
  for (const [k, v] of Object.entries(values)) {
    if (!Number.isInteger(v) || v <= 0) throw new ShapeError(`${name}: ${k} must be a positive integer, got ${v}`);
  }
}

/** Checks a `[rows, heads, headDim]` f32 tensor (rank 3) and returns its dimensions. */
export function expectHeads(name: string, what: string, t: Tensor, shape?: readonly (number | undefined)[]) {
  expectTensor(t, `${name} ${what}`, { rank: 3, dtype: 'f32', shape });
  const [rows, heads, headDim] = t.shape;
  expectPositive(`${name} ${what}`, { rows, heads, headDim });
  return { rows, heads, headDim };
}

/** Query heads per KV head; throws unless Hq is a multiple of Hkv. */
export function gqaGroup(name: string, Hq: number, Hkv: number): number {
  if (Hq % Hkv !== 0) throw new ShapeError(`${name}: ${Hq} query heads are not a multiple of ${Hkv} KV heads`);
  return Hq / Hkv;
}

/** Throws when a dispatch dimension exceeds the device limit. */
export function expectWorkgroups(name: string, ctx: GpuContext, what: string, count: number): void {
  const max = ctx.caps.limits.maxComputeWorkgroupsPerDimension;
  if (count > max) throw new ShapeError(`${name}: ${count} workgroups of ${what} exceed the device limit ${max}`);
}
