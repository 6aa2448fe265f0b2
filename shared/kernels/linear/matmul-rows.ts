/**
 * `linear/matmul-rows`: the matmul (prefill and decode) for adapters that run compute shaders on
 * CPU cores (lavapipe). Register-blocked, no workgroup memory, x shared between lanes with
 * subgroup shuffles; see `shaders/linear/matmul-rows.wgsl`.
 */
import src from '../../../shaders/linear/matmul-rows.wgsl?raw';
import { ShapeError, UnsupportedAdapterError } from '../../errors.ts';
import { fixedSubgroupSize } from '../../gpu/capabilities.ts';
import type { GpuContext } from '../../gpu/context.ts';
import { assembleWgsl, type ProgramCall } from '../../gpu/program.ts';
import { alias, constBool, constU32, enables } from '../header.ts';
import { type LinearArgs, linearUniforms, resolveLinear, weightWindows } from './common.ts';
import { vec4Compatible } from './matmul-vec4.ts';

export const MATMUL_ROWS = 'linear/matmul-rows';

/** Lanes per workgroup, rows of y per workgroup, columns per lane. */
export interface MatmulRowsTile {
  lanes: number;
  rows: number;
  cols: number;
}

/**
 * The tile for M rows, measured on lavapipe (2 cores, AVX2, subgroups of 8): 8 rows × 4 columns
 * per lane from 8 rows up, 4 × 4 from 4, and M × 4 below (a lone decode row reads 4 W columns
 * per lane). Any tile gives the same bits for a row.
 */
export function matmulRowsTile(M: number): MatmulRowsTile {
  if (M >= 8) return { lanes: 32, rows: 8, cols: 4 };
  if (M >= 4) return { lanes: 32, rows: 4, cols: 4 };
  return { lanes: 32, rows: M, cols: 4 };
}

/** True when this adapter can run the kernel: `subgroups` with one fixed size. */
export function matmulRowsSupported(ctx: GpuContext): boolean {
  return fixedSubgroupSize(ctx.caps) > 0;
}

/** The `loadW` helper: f16 weights are read as u32 pairs and unpacked, f32 as vec4. */
function loadW(wt: 'f32' | 'f16'): string {
  return wt === 'f16'
    ? 'alias WV = vec2<u32>;\nfn loadW(i: u32) -> vec4<f32> { let u = w[i]; return vec4<f32>(unpack2x16float(u.x), unpack2x16float(u.y)); }'
    : 'alias WV = vec4<f32>;\nfn loadW(i: u32) -> vec4<f32> { return w[i]; }';
}

/**
 * Register-blocked matmul for CPU adapters (see the module header). Needs a fixed subgroup size
 * (`matmulRowsSupported(ctx)`).
 *
 * @example
 * ctx.run(matmulRows(ctx, { x, w, y, M: 256, N: 1024, K: 1024 }));
 */
export function matmulRows(ctx: GpuContext, args: LinearArgs): ProgramCall {
  const r = resolveLinear(MATMUL_ROWS, args);
  if (!vec4Compatible(r)) {
    throw new ShapeError(`${MATMUL_ROWS}: K (${r.K}), ldx (${r.ldx}) and xOffset (${r.xOffset}) must be multiples of 4`);
  }
  const sg = fixedSubgroupSize(ctx.caps);
  if (sg === 0) {
    throw new UnsupportedAdapterError(`${MATMUL_ROWS} needs the subgroups feature with one fixed subgroup size; use linear/matmul-vec4`);
  }
  const wt = r.w.dtype;
  if (wt !== 'f32' && wt !== 'f16') throw new ShapeError(`${MATMUL_ROWS}: weight "${r.w.label}" is ${wt}, expected f32 or f16`);
  const hasBias = r.bias !== undefined;
  const { w, bias } = weightWindows(r);
  const { lanes, rows, cols } = matmulRowsTile(r.M);
  return {
    info: {
      name: MATMUL_ROWS,
      cacheKey: `${wt}:bias=${hasBias}:${lanes}x${rows}x${cols}:sg=${sg}`,
      source: () =>
        assembleWgsl(
          enables(wt),
          'enable subgroups;',
          alias('WT', wt),
          loadW(wt),
          constBool('HAS_BIAS', hasBias),
          constU32('WG', lanes),
          constU32('R', rows),
          constU32('C', cols),
          constU32('SG', sg),
          src,
        ),
      access: ['read', 'read', 'read', 'read_write'],
    },
    bindings: [r.x, w, bias ?? ctx.dummyTensor(), r.y],
    uniforms: linearUniforms(r),
    workgroups: [Math.ceil(r.N / (lanes * cols)), Math.ceil(r.M / rows), 1],
  };
}
