import src from '../../../shaders/vision/merge-gather.wgsl?raw';
import { ShapeError } from '../../errors.ts';
import type { GpuContext } from '../../gpu/context.ts';
import { assembleWgsl, type ProgramCall, splitWorkgroups } from '../../gpu/program.ts';
import { expectTensor, type Tensor } from '../../gpu/tensor.ts';
import type { PatchGrid } from './pos-embed-interp.ts';

export const MERGE_GATHER = 'vision/merge-gather';

export interface MergeGatherArgs {
  /** Patches in raster order `[t, h, w, D]`, f32, starting at element `xOffset`. */
  x: Tensor;
  /** Windows `[t·(h/m)·(w/m), m²·D]`, f32, starting at element `yOffset`. */
  y: Tensor;
  grid: PatchGrid;
  /** Channels per patch. */
  D: number;
  /** Spatial merge size m. Default 2. */
  merge?: number;
  xOffset?: number;
  yOffset?: number;
}

const WORKGROUP = 256;

/**
 * Gathers each m×m window of raster-ordered patches into one row (top-left, top-right,
 * bottom-left, bottom-right for m = 2). See `shaders/vision/merge-gather.wgsl`.
 *
 * @example
 * ctx.run(mergeGather(ctx, { x: patches, y: windows, grid: { t: 1, h: 32, w: 40 }, D: 1024 }));
 */
export function mergeGather(ctx: GpuContext, args: MergeGatherArgs): ProgramCall {
  const name = MERGE_GATHER;
  const { x, y, grid, D } = args;
  const merge = args.merge ?? 2;
  const xOffset = args.xOffset ?? 0;
  const yOffset = args.yOffset ?? 0;
  for (const [k, v] of Object.entries({ t: grid.t, h: grid.h, w: grid.w, D, merge })) {
    if (!Number.isInteger(v) || v <= 0) throw new ShapeError(`${name}: ${k} must be a positive integer, got ${v}`);
  }
  for (const [k, v] of Object.entries({ xOffset, yOffset })) {
    if (!Number.isInteger(v) || v < 0) throw new ShapeError(`${name}: ${k} must be a non-negative integer, got ${v}`);
  }
  if (grid.h % merge !== 0 || grid.w % merge !== 0) {
    throw new ShapeError(`${name}: grid ${grid.h}×${grid.w} is not a multiple of the merge size ${merge}`);
  }
  expectTensor(x, `${name} x`, { dtype: 'f32' });
  expectTensor(y, `${name} y`, { dtype: 'f32' });
  const n = grid.t * grid.h * grid.w * D;
  if (xOffset + n > x.size) {
    throw new ShapeError(`${name}: x "${x.label}" has ${x.size} elements, needs ${xOffset + n} ([${grid.t}, ${grid.h}, ${grid.w}, ${D}] from ${xOffset})`);
  }
  if (yOffset + n > y.size) {
    const rows = n / (merge * merge * D);
    throw new ShapeError(`${name}: y "${y.label}" has ${y.size} elements, needs ${yOffset + n} ([${rows}, ${merge * merge * D}] from ${yOffset})`);
  }
  return {
    info: { name, cacheKey: '', source: () => assembleWgsl(src), access: ['read', 'read_write'] },
    bindings: [x, y],
    uniforms: [
      { u32: grid.t },
      { u32: grid.h },
      { u32: grid.w },
      { u32: D },
      { u32: merge },
      { u32: xOffset },
      { u32: yOffset },
      { u32: 0 },
    ],
    workgroups: splitWorkgroups(Math.ceil(n / WORKGROUP), ctx.caps.limits.maxComputeWorkgroupsPerDimension),
  };
}
