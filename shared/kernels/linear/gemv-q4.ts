import src from '../../../shaders/linear/gemv-q4.wgsl?raw';
import { ShapeError } from '../../errors.ts';
import type { GpuContext } from '../../gpu/context.ts';
import { assembleWgsl, type ProgramCall, splitWorkgroups } from '../../gpu/program.ts';
import { alias, constBool, constU32, enables } from '../header.ts';
import { linearUniforms } from './common.ts';
import { GEMV_MAX_M } from './gemv.ts';
import { type Q4LinearArgs, q4Windows, resolveQ4Linear } from './q4.ts';

export const GEMV_Q4 = 'linear/gemv-q4';

/** Threads per output column of `gemv-q4` for a row length K (depends on K only: batch invariance). */
export function gemvQ4Lanes(K: number): number {
  // Each lane reads at least 2 blocks of 32 codes, at most 32 lanes per column.
  let lanes = 1;
  while (lanes < 32 && lanes * 2 < K / 32) lanes *= 2;
  return lanes;
}

/**
 * Decode-shaped matmul (M ≤ 8 rows) with a q4 weight, dequantizing in registers. See
 * `shaders/linear/gemv-q4.wgsl`.
 */
export function gemvQ4(ctx: GpuContext, args: Q4LinearArgs): ProgramCall {
  const r = resolveQ4Linear(GEMV_Q4, args);
  if (r.M > GEMV_MAX_M) throw new ShapeError(`${GEMV_Q4}: M = ${r.M} rows, at most ${GEMV_MAX_M}`);
  const maxM = r.M <= 1 ? 1 : r.M <= 4 ? 4 : 8;
  const lanes = gemvQ4Lanes(r.K);
  const cols = 256 / lanes;
  const st = r.w.scaleDtype;
  const G = r.w.groupSize;
  const hasBias = r.bias !== undefined;
  const { codes, scales, bias } = q4Windows(r);
  return {
    info: {
      name: GEMV_Q4,
      cacheKey: `${st}:bias=${hasBias}:m=${maxM}:lanes=${lanes}:g=${G}`,
      source: () =>
        assembleWgsl(
          enables(st),
          alias('ST', st),
          constBool('HAS_BIAS', hasBias),
          constU32('MAX_M', maxM),
          constU32('LANES', lanes),
          constU32('COLS', cols),
          constU32('GROUP', G),
          src,
        ),
      access: ['read', 'read', 'read', 'read', 'read_write'],
    },
    bindings: [r.x, codes, scales, bias ?? ctx.dummyTensor(), r.y],
    uniforms: linearUniforms(r),
    workgroups: splitWorkgroups(Math.ceil(r.N / cols), ctx.caps.limits.maxComputeWorkgroupsPerDimension),
  };
}
