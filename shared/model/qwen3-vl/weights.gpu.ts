/**
 * Model weights on the GPU, by Hugging Face name. The loader (`loadWeights`) fills it from a
 * checkpoint; the model code only looks tensors up. A projection weight may be held as a q4
 * `QuantizedWeight`: `getLinear` returns either kind (for `linear`), `get` only plain tensors.
 */
import { VlmeshError } from '../../errors.ts';
import type { Tensor } from '../../gpu/tensor.ts';
import { isQuantized, type LinearWeight, type QuantizedWeight } from '../../kernels/linear/q4.ts';

export class MissingWeightError extends VlmeshError {
  constructor(name: string) {
    super('MISSING_WEIGHT', `weight "${name}" was not loaded (checkpoint incomplete, or outside this stage's layer range)`);
  }
}

/** A plain tensor was asked for and the weight is quantized (only `linear` reads q4 weights). */
export class QuantizedWeightError extends VlmeshError {
  constructor(name: string) {
    super('QUANTIZED_WEIGHT', `weight "${name}" is held as q4 and can only be read by linear (getLinear), not as a plain tensor`);
  }
}

export class GpuWeights {
  private readonly map = new Map<string, Tensor | QuantizedWeight>();

  set(name: string, t: Tensor | QuantizedWeight): void {
    this.map.get(name)?.release();
    this.map.set(name, t);
  }

  /** A plain (f32/f16) tensor; throws `QuantizedWeightError` for a q4 weight. */
  get(name: string): Tensor {
    const t = this.map.get(name);
    if (!t) throw new MissingWeightError(name);
    if (isQuantized(t)) throw new QuantizedWeightError(name);
    return t;
  }

  /** A weight for `linear`: a plain tensor or a q4 weight. */
  getLinear(name: string): LinearWeight {
    const t = this.map.get(name);
    if (!t) throw new MissingWeightError(name);
    return t;
  }

  /** True when the weight is held as q4. */
  isQuantized(name: string): boolean {
    const t = this.map.get(name);
    return t !== undefined && isQuantized(t);
  }

  has(name: string): boolean {
    return this.map.has(name);
  }

  /** Bytes held on the GPU. */
  get bytes(): number {
    return this.bytesOf(() => true);
  }

  /** Bytes held on the GPU by the weights whose name passes `pick`. */
  bytesOf(pick: (name: string) => boolean): number {
    let n = 0;
    for (const [name, t] of this.map) if (pick(name)) n += t.byteLength;
    return n;
  }

  release(): void {
    for (const t of this.map.values()) t.release();
    this.map.clear();
  }
}
