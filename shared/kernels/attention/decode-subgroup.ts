/**
 * `attention/decode-subgroup`: decode attention with one subgroup per (query head, sequence) and
 * no workgroup memory, for adapters that run compute shaders on CPU cores (lavapipe); the same
 * arguments and results as `attention/decode-paged`. See `shaders/attention/decode-subgroup.wgsl`.
 */
import src from '../../../shaders/attention/decode-subgroup.wgsl?raw';
import io from '../../../shaders/common/decode-attention-io.wgsl?raw';
import { ShapeError, UnsupportedAdapterError } from '../../errors.ts';
import { fixedSubgroupSize } from '../../gpu/capabilities.ts';
import type { GpuContext } from '../../gpu/context.ts';
import { assembleWgsl, type ProgramCall } from '../../gpu/program.ts';
import { alias, constU32, enables } from '../header.ts';
import { expectWorkgroups } from './common.ts';
import { type DecodePagedArgs, resolveDecode } from './decode-paged.ts';

export const DECODE_SUBGROUP = 'attention/decode-subgroup';

/** True when this adapter can run the kernel for `headDim`: a fixed subgroup size dividing it. */
export function decodeSubgroupSupported(ctx: GpuContext, headDim: number): boolean {
  const sg = fixedSubgroupSize(ctx.caps);
  return sg > 0 && headDim % sg === 0;
}

/**
 * Decode attention of one query per sequence over its paged K/V (see `decodePaged` for the
 * arguments); needs `decodeSubgroupSupported(ctx, headDim)`.
 *
 * @example
 * ctx.run(decodeSubgroup(ctx, { q, contextLens, blockTables, kCache, vCache, out }));
 */
export function decodeSubgroup(ctx: GpuContext, args: DecodePagedArgs): ProgramCall {
  const name = DECODE_SUBGROUP;
  const d = resolveDecode(name, ctx, args);
  const sg = fixedSubgroupSize(ctx.caps);
  if (sg === 0) throw new UnsupportedAdapterError(`${name} needs the subgroups feature with one fixed subgroup size; use attention/decode-paged`);
  if (d.headDim % sg !== 0) throw new ShapeError(`${name}: head_dim ${d.headDim} is not a multiple of the subgroup size ${sg}; use attention/decode-paged`);
  expectWorkgroups(name, ctx, 'query heads', d.Hq);
  const kt = d.cacheDtype;
  return {
    info: {
      name,
      cacheKey: `${kt}:hd=${d.headDim}:group=${d.group}:sg=${sg}`,
      source: () =>
        assembleWgsl(enables(kt), 'enable subgroups;', alias('KT', kt), constU32('HD', d.headDim), constU32('GROUP', d.group), constU32('SG', sg), io, src),
      access: ['read', 'read', 'read', 'read', 'read', 'read_write'],
    },
    bindings: d.bindings,
    uniforms: d.uniforms,
    workgroups: [d.Hq, d.numSeqs, 1],
  };
}
