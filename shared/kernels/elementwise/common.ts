/**
 * Shared pieces of the elementwise kernels: range checks on flat f32 tensors and the 1-D
 * dispatch of WG-thread workgroups (split in (x, y) beyond the per-dimension limit).
 */
import { ShapeError } from '../../errors.ts';
import type { GpuContext } from '../../gpu/context.ts';
import { assembleWgsl, type ProgramCall, splitWorkgroups } from '../../gpu/program.ts';
import { expectTensor, type Tensor } from '../../gpu/tensor.ts';
import { constBool, constU32 } from '../header.ts';

/** Threads per workgroup of every elementwise kernel (the `WG` constant in their WGSL). */
export const ELEMENTWISE_WG = 256;

/** Checks that `name` is an f32 tensor holding elements `[offset, offset + n)`. */
export function expectRange(kernel: string, what: string, t: Tensor, offset: number, n: number): void {
  expectTensor(t, `${kernel} ${what} ("${t.label}")`, { dtype: 'f32' });
  if (!Number.isInteger(offset) || offset < 0) {
    throw new ShapeError(`${kernel}: ${what}Offset must be a non-negative integer, got ${offset}`);
  }
  if (offset + n > t.size) {
    throw new ShapeError(`${kernel}: ${what} "${t.label}" has ${t.size} elements, needs ${offset + n} (offset ${offset} + n ${n})`);
  }
}

/** The element count: given, or what is left of `t` after `offset`; must be a positive integer. */
export function elementCountArg(kernel: string, n: number | undefined, t: Tensor, offset: number): number {
  const count = n ?? t.size - offset;
  if (!Number.isInteger(count) || count <= 0) throw new ShapeError(`${kernel}: n must be a positive integer, got ${count}`);
  return count;
}

/** Workgroups for n elements, one element per thread. */
export function elementwiseWorkgroups(ctx: GpuContext, n: number): [number, number, number] {
  return splitWorkgroups(Math.ceil(n / ELEMENTWISE_WG), ctx.caps.limits.maxComputeWorkgroupsPerDimension);
}

export interface UnaryArgs {
  /** Input, element i at `xOffset + i`. f32. */
  x: Tensor;
  /**
   * Output, element i at `yOffset + i`. f32. Omit it, or pass `x` itself with the same offset, to
   * compute in place. Must not be another part of x's buffer.
   */
  y?: Tensor;
  /** Elements; defaults to all of x after xOffset. */
  n?: number;
  xOffset?: number;
  yOffset?: number;
}

export interface ResolvedUnary {
  x: Tensor;
  y: Tensor;
  inPlace: boolean;
  n: number;
  xOffset: number;
  yOffset: number;
}

/** Validates a unary elementwise call; `y` absent or on x's buffer means in place. */
export function resolveUnary(kernel: string, a: UnaryArgs): ResolvedUnary {
  const xOffset = a.xOffset ?? 0;
  const inPlace = a.y === undefined || a.y.buffer === a.x.buffer;
  const yOffset = a.yOffset ?? (inPlace ? xOffset : 0);
  const n = elementCountArg(kernel, a.n, a.x, xOffset);
  const y = a.y ?? a.x;
  expectRange(kernel, 'x', a.x, xOffset, n);
  expectRange(kernel, 'y', y, yOffset, n);
  if (inPlace && yOffset !== xOffset) {
    throw new ShapeError(
      `${kernel}: y shares x's buffer, so it must use x's offset (in place); got xOffset ${xOffset}, yOffset ${yOffset}`,
    );
  }
  return { x: a.x, y, inPlace, n, xOffset, yOffset };
}

/**
 * The program of an in-place-or-not unary kernel (`y = f(x)`): the layout every unary WGSL file in
 * shaders/elementwise/ shares (x, y, Params {n, xOffset, yOffset}, `IN_PLACE`).
 */
export function unaryCall(ctx: GpuContext, name: string, src: string, args: UnaryArgs): ProgramCall {
  const r = resolveUnary(name, args);
  return {
    info: {
      name,
      cacheKey: `wg=${ELEMENTWISE_WG}:inPlace=${r.inPlace}`,
      source: () => assembleWgsl(constU32('WG', ELEMENTWISE_WG), constBool('IN_PLACE', r.inPlace), src),
      access: ['read_write', 'read_write'],
    },
    bindings: [r.x, r.inPlace ? ctx.dummyTensor() : r.y],
    uniforms: [{ u32: r.n }, { u32: r.xOffset }, { u32: r.yOffset }, { u32: 0 }],
    workgroups: elementwiseWorkgroups(ctx, r.n),
  };
}
