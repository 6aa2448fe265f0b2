/**
 * The paged KV cache of a layer range: one K and one V tensor per layer
 * (`[numBlocks, blockSize, Hkv, hd]`), all addressed through one block manager's tables.
 */
import type { GpuContext } from '../../gpu/context.ts';
import type { Tensor } from '../../gpu/tensor.ts';
import { KvBlockManager } from '../../engine/kv-blocks.ts';
import type { LayerRange } from './text.ts';

export interface KvCacheOptions {
  numBlocks: number;
  blockSize?: number;
  layers: LayerRange;
  numKvHeads: number;
  headDim: number;
  dtype?: 'f32' | 'f16';
}

export class PagedKvCache {
  readonly blocks: KvBlockManager;
  readonly layers: LayerRange;
  private readonly k = new Map<number, Tensor>();
  private readonly v = new Map<number, Tensor>();

  constructor(
    private readonly ctx: GpuContext,
    o: KvCacheOptions,
  ) {
    this.blocks = new KvBlockManager({ numBlocks: o.numBlocks, blockSize: o.blockSize ?? 16 });
    this.layers = o.layers;
    const shape = [o.numBlocks, this.blocks.blockSize, o.numKvHeads, o.headDim];
    for (let l = o.layers[0]; l < o.layers[1]; l++) {
      this.k.set(l, ctx.zeros(shape, o.dtype ?? 'f32', `kv.k.${l}`));
      this.v.set(l, ctx.zeros(shape, o.dtype ?? 'f32', `kv.v.${l}`));
    }
  }

  kCache(layer: number): Tensor {
    return this.k.get(layer)!;
  }

  vCache(layer: number): Tensor {
    return this.v.get(layer)!;
  }

  /** Bytes of K and V per token over all layers of the range. */
  get bytesPerToken(): number {
    let n = 0;
    for (const t of this.k.values()) n += (2 * t.byteLength) / (t.shape[0] * t.shape[1]);
    return n;
  }

  /** Uploads the block tables of `seqs` (row i = seqs[i]). */
  tables(seqs: readonly number[]): Tensor {
    const { data, width } = this.blocks.tableArray(seqs);
    return this.ctx.upload(data, [seqs.length, width], 'u32', 'kv.block_tables');
  }

  release(): void {
    for (const t of [...this.k.values(), ...this.v.values()]) t.release();
    this.k.clear();
    this.v.clear();
  }
}
