import src from '../../../shaders/vision/pos-embed-interp.wgsl?raw';
import { ShapeError } from '../../errors.ts';
import type { GpuContext } from '../../gpu/context.ts';
import { assembleWgsl, type ProgramCall, splitWorkgroups } from '../../gpu/program.ts';
import { expectTensor, type Tensor } from '../../gpu/tensor.ts';
import { alias, enables } from '../header.ts';

export const POS_EMBED_INTERP = 'vision/pos-embed-interp';

/** One image or video in patches: `t` temporal patches of an `h × w` patch grid. */
export interface PatchGrid {
  t: number;
  h: number;
  w: number;
}

export interface PosEmbedInterpArgs {
  /** Learned position table `[G·G, D]` (HF `pos_embed.weight`), f32 or f16. */
  table: Tensor;
  /** Patch-embedding output `[P, D]` f32, updated in place (`hidden += pos`). */
  hidden: Tensor;
  /** The grid of the image whose rows are updated. */
  grid: PatchGrid;
  /** First row of this image in `hidden` (images are concatenated along P). Default 0. */
  rowOffset?: number;
  /** Spatial merge size m (2 in every published model). Default 2. */
  merge?: number;
}

const WORKGROUP = 256;

/** torch's float32 linspace step `(end - start) / (steps - 1)` for start 0. */
export function linspaceStepF32(end: number, steps: number): number {
  return steps > 1 ? Math.fround(Math.fround(end) / (steps - 1)) : 0;
}

function gridSide(name: string, table: Tensor): number {
  const G = Math.round(Math.sqrt(table.shape[0]));
  if (G * G !== table.shape[0]) {
    throw new ShapeError(`${name}: table "${table.label}" has ${table.shape[0]} rows, not a square G·G grid`);
  }
  return G;
}

/**
 * Adds the bilinearly interpolated position embedding of one image (all its temporal patches)
 * to its rows of `hidden`, in merge-window row order. See `shaders/vision/pos-embed-interp.wgsl`.
 *
 * @example
 * ctx.run(posEmbedInterp(ctx, { table: posEmbed, hidden, grid: { t: 1, h: 32, w: 40 } }));
 */
export function posEmbedInterp(ctx: GpuContext, args: PosEmbedInterpArgs): ProgramCall {
  const name = POS_EMBED_INTERP;
  const { table, hidden, grid } = args;
  const rowOffset = args.rowOffset ?? 0;
  const merge = args.merge ?? 2;
  expectTensor(table, `${name} table`, { dtype: ['f32', 'f16'], rank: 2 });
  if (table.dtype === 'f16' && !ctx.caps.f16) {
    throw new ShapeError(`${name}: table "${table.label}" is f16 but this adapter has no shader-f16`);
  }
  const D = table.shape[1];
  expectTensor(hidden, `${name} hidden`, { dtype: 'f32', rank: 2, shape: [undefined, D] });
  const G = gridSide(name, table);
  for (const [k, v] of Object.entries({ t: grid.t, h: grid.h, w: grid.w, merge })) {
    if (!Number.isInteger(v) || v <= 0) throw new ShapeError(`${name}: ${k} must be a positive integer, got ${v}`);
  }
  if (grid.h % merge !== 0 || grid.w % merge !== 0) {
    throw new ShapeError(`${name}: grid ${grid.h}×${grid.w} is not a multiple of the merge size ${merge}`);
  }
  const rows = grid.t * grid.h * grid.w;
  if (!Number.isInteger(rowOffset) || rowOffset < 0 || rowOffset + rows > hidden.shape[0]) {
    throw new ShapeError(
      `${name}: rows [${rowOffset}, ${rowOffset + rows}) of the grid ${grid.t}×${grid.h}×${grid.w} do not fit hidden "${hidden.label}" [${hidden.shape}]`,
    );
  }
  const threads = grid.h * grid.w * D;
  return {
    info: {
      name,
      cacheKey: table.dtype,
      source: () => assembleWgsl(enables(table.dtype), alias('TT', table.dtype), src),
      access: ['read', 'read_write'],
    },
    bindings: [table, hidden],
    uniforms: [
      { u32: grid.t },
      { u32: grid.h },
      { u32: grid.w },
      { u32: D },
      { u32: G },
      { u32: merge },
      { u32: rowOffset },
      { u32: 0 },
      { f32: linspaceStepF32(G - 1, grid.h) },
      { f32: linspaceStepF32(G - 1, grid.w) },
      { u32: 0 },
      { u32: 0 },
    ],
    workgroups: splitWorkgroups(Math.ceil(threads / WORKGROUP), ctx.caps.limits.maxComputeWorkgroupsPerDimension),
  };
}

/**
 * The dispatches for several images concatenated along P (HF `grid_thw` order): image i's rows
 * start after the rows of images 0 … i-1 (plus `rowOffset`).
 */
export function posEmbedInterpCalls(
  ctx: GpuContext,
  args: Omit<PosEmbedInterpArgs, 'grid'> & { grids: readonly PatchGrid[] },
): ProgramCall[] {
  const calls: ProgramCall[] = [];
  let row = args.rowOffset ?? 0;
  for (const grid of args.grids) {
    calls.push(posEmbedInterp(ctx, { table: args.table, hidden: args.hidden, grid, rowOffset: row, merge: args.merge }));
    row += grid.t * grid.h * grid.w;
  }
  return calls;
}
