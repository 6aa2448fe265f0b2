import src from '../../../shaders/linear/gemv.wgsl?raw';
import { ShapeError } from '../../errors.ts';
import type { GpuContext } from '../../gpu/context.ts';
import { assembleWgsl, type ProgramCall, splitWorkgroups } from '../../gpu/program.ts';
import { alias, constBool, constU32, enables } from '../header.ts';
import { type LinearArgs, linearUniforms, resolveLinear, weightWindows } from './common.ts';
import { vec4Compatible } from './matmul-vec4.ts';

export const GEMV = 'linear/gemv';
/** Most rows one gemv dispatch computes (one per sequence in a decode batch). */
export const GEMV_MAX_M = 8;

/** Decode-shaped matmul (M ≤ 8 rows), reading W once. See `shaders/linear/gemv.wgsl`. */
export function gemv(ctx: GpuContext, args: LinearArgs): ProgramCall {
  const r = resolveLinear(GEMV, args);
  if (!vec4Compatible(r)) {
    throw new ShapeError(`${GEMV}: K (${r.K}), ldx (${r.ldx}) and xOffset (${r.xOffset}) must be multiples of 4`);
  }
  if (r.M > GEMV_MAX_M) throw new ShapeError(`${GEMV}: M = ${r.M} rows, at most ${GEMV_MAX_M}`);
  // Rows beyond 4 cost registers on every thread, so specialise on 1, 4 or 8.
  const maxM = r.M <= 1 ? 1 : r.M <= 4 ? 4 : 8;
  // Threads per column: enough that each reads at least 8 vec4s of its W row, at most 32. Short
  // rows (small K) then take few threads per column instead of leaving most of 32 idle.
  let lanes = 1;
  while (lanes < 32 && lanes * 8 < r.K / 4) lanes *= 2;
  const cols = 256 / lanes;
  const wt = r.w.dtype;
  const hasBias = r.bias !== undefined;
  const { w, bias } = weightWindows(r);
  return {
    info: {
      name: GEMV,
      cacheKey: `${wt}:bias=${hasBias}:m=${maxM}:lanes=${lanes}`,
      source: () =>
        assembleWgsl(enables(wt), alias('WT', wt), constBool('HAS_BIAS', hasBias), constU32('MAX_M', maxM), constU32('LANES', lanes), constU32('COLS', cols), src),
      access: ['read', 'read', 'read', 'read_write'],
    },
    bindings: [r.x, w, bias ?? ctx.dummyTensor(), r.y],
    uniforms: linearUniforms(r),
    workgroups: splitWorkgroups(Math.ceil(r.N / cols), ctx.caps.limits.maxComputeWorkgroupsPerDimension),
  };
}
