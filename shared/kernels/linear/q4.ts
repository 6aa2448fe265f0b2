/**
 * `QuantizedWeight`: a q4 weight on the GPU (format in `shared/io/quant-q4.ts`): packed codes
 * `[N, K/8]` u32 and scales `[N, K/groupSize]` f16 or f32. The q4 kernels (`gemv-q4`,
 * `matmul-q4`) take one instead of a plain weight tensor; `linear` dispatches on the kind.
 */
import { ShapeError } from '../../errors.ts';
import type { GpuContext } from '../../gpu/context.ts';
import { expectTensor, type Tensor } from '../../gpu/tensor.ts';
import { checkQ4Shape, type Q4Host, type Q4ScaleDType } from '../../io/quant-q4.ts';
import { checkLinearRows, type LinearArgs, type ResolvedLinearRows } from './common.ts';

/** A group-wise int4 weight `[N, K]` on the GPU. */
export class QuantizedWeight {
  readonly kind = 'q4' as const;
  constructor(
    /** Packed codes `[N, K/8]` u32 (8 codes per word, first element in the low nibble). */
    readonly codes: Tensor,
    /** Scales `[N, K/groupSize]`, f16 or f32. */
    readonly scales: Tensor,
    /** Logical shape `[N, K]` (HF `[out, in]`). */
    readonly shape: readonly [number, number],
    /** Elements per scale along K. */
    readonly groupSize: number,
    readonly label: string,
  ) {
    const [N, K] = shape;
    checkQ4Shape(N, K, groupSize, `q4 weight "${label}"`);
    expectTensor(codes, `q4 weight "${label}" codes`, { dtype: 'u32', shape: [N, K / 8] });
    expectTensor(scales, `q4 weight "${label}" scales`, { dtype: ['f32', 'f16'], shape: [N, K / groupSize] });
  }

  /** Element type of the scales. */
  get scaleDtype(): Q4ScaleDType {
    return this.scales.dtype as Q4ScaleDType;
  }

  /** Bytes held on the GPU (codes + scales). */
  get byteLength(): number {
    return this.codes.byteLength + this.scales.byteLength;
  }

  get isReleased(): boolean {
    return this.codes.isReleased;
  }

  release(): void {
    this.codes.release();
    this.scales.release();
  }

  /**
   * Uploads a host-quantized weight.
   *
   * @example
   * const qw = QuantizedWeight.upload(ctx, quantizeQ4(w, N, K, { scaleDtype: 'f16' }), 'q_proj');
   */
  static upload(ctx: GpuContext, q: Q4Host, label: string): QuantizedWeight {
    const groups = q.K / q.groupSize;
    const codes = ctx.upload(q.codes, [q.N, q.K / 8], 'u32', `${label}.codes`);
    const scales = q.scalesF16
      ? ctx.upload(q.scalesF16, [q.N, groups], 'f16', `${label}.scales`)
      : ctx.upload(q.scales, [q.N, groups], 'f32', `${label}.scales`);
    return new QuantizedWeight(codes, scales, [q.N, q.K], q.groupSize, label);
  }
}

/** A weight `linear` accepts: a plain f32/f16 tensor or a q4 weight. */
export type LinearWeight = Tensor | QuantizedWeight;

/** True for a q4 weight. */
export function isQuantized(w: LinearWeight): w is QuantizedWeight {
  return w instanceof QuantizedWeight;
}

/** `LinearArgs` with a q4 weight; the bias (optional) has the scales' dtype. */
export type Q4LinearArgs = Omit<LinearArgs, 'w'> & { w: QuantizedWeight };

export interface ResolvedQ4Linear extends ResolvedLinearRows {
  w: QuantizedWeight;
  bias?: Tensor;
}

/** Validates a q4 linear's arguments (shapes, offsets, vec4 alignment of x). */
export function resolveQ4Linear(name: string, a: Q4LinearArgs): ResolvedQ4Linear {
  const r: ResolvedQ4Linear = { ldx: a.K, ldy: a.N, xOffset: 0, yOffset: 0, wRowOffset: 0, ...a };
  checkLinearRows(name, r);
  const w = r.w;
  if (w.isReleased) throw new ShapeError(`${name}: q4 weight "${w.label}" was already released`);
  if (w.shape[1] !== r.K || w.shape[0] < r.wRowOffset + r.N) {
    throw new ShapeError(`${name}: q4 weight "${w.label}" must have shape [≥${r.wRowOffset + r.N}, ${r.K}] (HF [out, in]), got [${w.shape}]`);
  }
  if (r.bias) {
    expectTensor(r.bias, `${name} bias`, { dtype: w.scaleDtype, rank: 1 });
    if (r.bias.shape[0] < r.wRowOffset + r.N) {
      throw new ShapeError(`${name}: bias "${r.bias.label}" must have ≥${r.wRowOffset + r.N} elements, got [${r.bias.shape}]`);
    }
  }
  if (r.ldx % 4 !== 0 || r.xOffset % 4 !== 0) {
    throw new ShapeError(`${name}: ldx (${r.ldx}) and xOffset (${r.xOffset}) must be multiples of 4 for q4 weights`);
  }
  return r;
}

/** The rows [wRowOffset, wRowOffset+N) of codes, scales and bias as binding windows. */
export function q4Windows(r: ResolvedQ4Linear) {
  const words = r.K / 8;
  const groups = r.K / r.w.groupSize;
  return {
    codes: r.w.codes.view(r.wRowOffset * words, r.N * words),
    scales: r.w.scales.view(r.wRowOffset * groups, r.N * groups),
    bias: r.bias ? r.bias.view(r.wRowOffset, r.N) : undefined,
  };
}
