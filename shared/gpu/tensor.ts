/**
 * A tensor is a GPU buffer plus a shape and a dtype. Element 0 sits at byte 0 of the buffer;
 * the buffer may be larger than the tensor (pooled buffers round up).
 *
 * A `TensorView` is a window of a tensor's elements, bound as `{offset, size}`. Views let one
 * buffer larger than `maxStorageBufferBindingSize` be processed window by window.
 */
import { ShapeError } from '../errors.ts';
import { type DType, dtypeBytes, elementCount } from './dtype.ts';

export class Tensor {
  private released = false;
  constructor(
    readonly buffer: GPUBuffer,
    readonly shape: readonly number[],
    readonly dtype: DType,
    readonly label: string,
    private readonly onRelease?: (buf: GPUBuffer) => void,
  ) {}

  /** Number of elements. */
  get size(): number {
    return elementCount(this.shape);
  }

  /** Bytes the elements occupy (not rounded). */
  get byteLength(): number {
    return this.size * dtypeBytes(this.dtype);
  }

  get isReleased(): boolean {
    return this.released;
  }

  /** A view of elements `[offset, offset + size)`. */
  view(offset: number, size: number): TensorView {
    if (offset < 0 || size < 0 || offset + size > this.size) {
      throw new ShapeError(
        `view [${offset}, ${offset + size}) is outside tensor "${this.label}" of ${this.size} elements`,
      );
    }
    return { tensor: this, offset, size };
  }

  /** A tensor over the same buffer with another shape of the same element count. */
  reshape(shape: readonly number[]): Tensor {
    if (elementCount(shape) !== this.size) {
      throw new ShapeError(`cannot reshape "${this.label}" [${this.shape}] to [${shape}]`);
    }
    return new Tensor(this.buffer, shape, this.dtype, this.label);
  }

  /** Returns the buffer to its pool (or destroys it). Further use is an error. */
  release(): void {
    if (this.released) return;
    this.released = true;
    if (this.onRelease) this.onRelease(this.buffer);
  }
}

export interface TensorView {
  tensor: Tensor;
  /** First element of the window. */
  offset: number;
  /** Elements in the window. */
  size: number;
}

export function isView(b: Tensor | TensorView): b is TensorView {
  return !(b instanceof Tensor);
}

/** Checks a tensor's shape and dtype; the error names the tensor and what was expected. */
export function expectTensor(
  t: Tensor,
  name: string,
  opts: { shape?: readonly (number | undefined)[]; dtype?: DType | readonly DType[]; rank?: number },
): void {
  if (t.isReleased) throw new ShapeError(`${name} ("${t.label}") was already released`);
  if (opts.rank !== undefined && t.shape.length !== opts.rank) {
    throw new ShapeError(`${name} must have rank ${opts.rank}, got shape [${t.shape}]`);
  }
  if (opts.shape) {
    const ok =
      opts.shape.length === t.shape.length && opts.shape.every((d, i) => d === undefined || d === t.shape[i]);
    if (!ok) {
      const want = opts.shape.map((d) => (d === undefined ? '?' : String(d))).join(', ');
      throw new ShapeError(`${name} must have shape [${want}], got [${t.shape}]`);
    }
  }
  if (opts.dtype) {
    const allowed = Array.isArray(opts.dtype) ? opts.dtype : [opts.dtype];
    if (!allowed.includes(t.dtype)) {
      throw new ShapeError(`${name} must have dtype ${allowed.join(' or ')}, got ${t.dtype}`);
    }
  }
}
