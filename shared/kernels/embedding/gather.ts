/**
 * `embedding/gather`: out[t, :] = table[ids[t], :], with the table split into row windows that
 * each fit one storage binding (one dispatch per window).
 */
import src from '../../../shaders/embedding/gather.wgsl?raw';
import { ShapeError } from '../../errors.ts';
import type { GpuContext } from '../../gpu/context.ts';
import { dtypeBytes } from '../../gpu/dtype.ts';
import { assembleWgsl, type ProgramCall, splitWorkgroups } from '../../gpu/program.ts';
import { expectTensor, type Tensor } from '../../gpu/tensor.ts';
import { constBool, constU32 } from '../header.ts';
import { windowRows } from '../linear/index.ts';

export const GATHER = 'embedding/gather';
/** Threads per workgroup (the kernel's `WG`). */
const WG = 256;

export interface GatherArgs {
  /** Token ids, u32, read at `idsOffset + t`. */
  ids: Tensor;
  /** The embedding table `[V, D]`, f32 or f16 (f16 needs no shader-f16). */
  table: Tensor;
  /** f32; row t written at `outOffset + t·ldo`. */
  out: Tensor;
  /** Tokens; defaults to all of ids after idsOffset. */
  tokens?: number;
  idsOffset?: number;
  outOffset?: number;
  /** Out row stride; defaults to D. */
  ldo?: number;
  /**
   * The same ids, when the host knows them (a prompt's tokens): each is checked to be in [0, V)
   * before anything is dispatched. Without them, out-of-range ids give rows of zeros.
   */
  hostIds?: ArrayLike<number>;
}

interface ResolvedGather {
  V: number;
  D: number;
  tokens: number;
  idsOffset: number;
  outOffset: number;
  ldo: number;
}

function resolveGather(a: GatherArgs): ResolvedGather {
  expectTensor(a.ids, `${GATHER} ids ("${a.ids.label}")`, { dtype: 'u32' });
  expectTensor(a.table, `${GATHER} table ("${a.table.label}")`, { dtype: ['f32', 'f16'], rank: 2 });
  expectTensor(a.out, `${GATHER} out ("${a.out.label}")`, { dtype: 'f32' });
  const [V, D] = a.table.shape;
  const idsOffset = a.idsOffset ?? 0;
  const outOffset = a.outOffset ?? 0;
  const ldo = a.ldo ?? D;
  const tokens = a.tokens ?? a.ids.size - idsOffset;
  for (const [k, v] of Object.entries({ idsOffset, outOffset })) {
    if (!Number.isInteger(v) || v < 0) throw new ShapeError(`${GATHER}: ${k} must be a non-negative integer, got ${v}`);
  }
  if (!Number.isInteger(tokens) || tokens <= 0) throw new ShapeError(`${GATHER}: tokens must be a positive integer, got ${tokens}`);
  if (!Number.isInteger(ldo) || ldo < D) throw new ShapeError(`${GATHER}: ldo ${ldo} < D ${D}`);
  if (idsOffset + tokens > a.ids.size) {
    throw new ShapeError(`${GATHER}: ids "${a.ids.label}" has ${a.ids.size} elements, needs ${idsOffset + tokens}`);
  }
  const outNeed = outOffset + (tokens - 1) * ldo + D;
  if (outNeed > a.out.size) throw new ShapeError(`${GATHER}: out "${a.out.label}" has ${a.out.size} elements, needs ${outNeed}`);
  if (a.hostIds !== undefined) {
    if (a.hostIds.length !== tokens) {
      throw new ShapeError(`${GATHER}: ${a.hostIds.length} host ids for ${tokens} tokens`);
    }
    for (let t = 0; t < tokens; t++) {
      const id = a.hostIds[t];
      if (!Number.isInteger(id) || id < 0 || id >= V) {
        throw new ShapeError(`${GATHER}: token id ${id} at position ${t} is outside the embedding table "${a.table.label}" [0, ${V})`);
      }
    }
  }
  return { V, D, tokens, idsOffset, outOffset, ldo };
}

/** Rows per table window: fits one binding and starts at an aligned byte offset. */
export function gatherWindowRows(ctx: GpuContext, table: Tensor): number {
  const [V, D] = table.shape;
  const whole = V * D * dtypeBytes(table.dtype);
  if (whole <= ctx.caps.maxBindingBytes) return V;
  try {
    return windowRows(ctx, D, dtypeBytes(table.dtype), false);
  } catch (e) {
    throw new ShapeError(`${GATHER}: table "${table.label}" [${table.shape}] cannot be windowed: ${(e as Error).message}`);
  }
}

/**
 * The dispatches of one embedding lookup: one per table window (a single one when the table fits
 * one binding). Encode them in order with `ctx.run`, or use `gather` from the index.
 *
 * @example
 * for (const call of gatherCalls(ctx, { ids, table: embedTokens, out: hidden, hostIds: prompt })) ctx.run(call);
 */
export function gatherCalls(ctx: GpuContext, args: GatherArgs): ProgramCall[] {
  const r = resolveGather(args);
  const f16 = args.table.dtype === 'f16';
  const rows = gatherWindowRows(ctx, args.table);
  const chunks = Math.ceil(r.D / WG);
  const workgroups = splitWorkgroups(r.tokens * chunks, ctx.caps.limits.maxComputeWorkgroupsPerDimension);
  const calls: ProgramCall[] = [];
  for (let rowStart = 0; rowStart < r.V; rowStart += rows) {
    const rowCount = Math.min(rows, r.V - rowStart);
    calls.push({
      info: {
        name: GATHER,
        cacheKey: `wg=${WG}:table=${args.table.dtype}`,
        source: () => assembleWgsl(constU32('WG', WG), constBool('TABLE_F16', f16), src),
        access: ['read', 'read', 'read_write'],
      },
      bindings: [args.ids, args.table.view(rowStart * r.D, rowCount * r.D), args.out],
      uniforms: [
        { u32: r.tokens },
        { u32: r.D },
        { u32: r.V },
        { u32: rowStart },
        { u32: rowCount },
        { u32: r.idsOffset },
        { u32: r.outOffset },
        { u32: r.ldo },
      ],
      workgroups,
    });
  }
  return calls;
}
