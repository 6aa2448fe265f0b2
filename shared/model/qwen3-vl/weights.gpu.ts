/**
 * Model weights on the GPU, by Hugging Face name. The loader (`loadWeights`) fills it from a
 * checkpoint; the model code only looks tensors up.
 */
import { VlmeshError } from '../../errors.ts';
import type { Tensor } from '../../gpu/tensor.ts';

export class MissingWeightError extends VlmeshError {
  constructor(name: string) {
    super('MISSING_WEIGHT', `weight "${name}" was not loaded (checkpoint incomplete, or outside this stage's layer range)`);
  }
}

export class GpuWeights {
  private readonly map = new Map<string, Tensor>();

  set(name: string, t: Tensor): void {
    this.map.get(name)?.release();
    this.map.set(name, t);
  }

  get(name: string): Tensor {
    const t = this.map.get(name);
    if (!t) throw new MissingWeightError(name);
    return t;
  }

  has(name: string): boolean {
    return this.map.has(name);
  }

  /** Bytes held on the GPU. */
  get bytes(): number {
    let n = 0;
    for (const t of this.map.values()) n += t.byteLength;
    return n;
  }

  release(): void {
    for (const t of this.map.values()) t.release();
    this.map.clear();
  }
}
