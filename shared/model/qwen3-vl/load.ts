/**
 * Uploads a checkpoint's tensors to the GPU in the layout the model code reads: HF names, with
 * the vision blocks' fused `attn.qkv` split into `attn.q/k/v` (so each projection is its own
 * aligned tensor), BF16/F16/F32 converted to the compute dtype chunk by chunk.
 */
import type { GpuContext } from '../../gpu/context.ts';
import type { Tensor } from '../../gpu/tensor.ts';
import type { Qwen3VLConfig } from './config.ts';
import type { LayerRange } from './text.ts';
import { GpuWeights } from './weights.gpu.ts';

/** Where tensors come from: a checkpoint reader that uploads one tensor to the GPU. */
export interface TensorUploader {
  names(): string[];
  shape(name: string): readonly number[];
  upload(ctx: GpuContext, name: string, dtype: 'f32' | 'f16'): Promise<Tensor>;
}

export interface LoadOptions {
  /** Weight dtype on the GPU (f32 for exact comparisons; f16 halves memory where supported). */
  dtype: 'f32' | 'f16';
  /** Decoder layers to load (default: all). The head stage also takes embeddings and vision. */
  layers?: LayerRange;
  /** Load the vision tower (default: true when layer 0 is in range). */
  vision?: boolean;
  onProgress?: (done: number, total: number, name: string) => void;
}

function layerOf(name: string): number | null {
  const m = /^model\.language_model\.layers\.(\d+)\./.exec(name);
  return m ? Number(m[1]) : null;
}

/** Uploads the weights a layer range needs. */
export async function loadWeights(ctx: GpuContext, cfg: Qwen3VLConfig, src: TensorUploader, o: LoadOptions): Promise<GpuWeights> {
  const layers = o.layers ?? [0, cfg.text.numLayers];
  const head = layers[0] === 0;
  const tail = layers[1] === cfg.text.numLayers;
  const vision = o.vision ?? head;
  const wanted = src.names().filter((n) => {
    const l = layerOf(n);
    if (l !== null) return l >= layers[0] && l < layers[1];
    if (n.startsWith('model.visual.')) return vision;
    if (n === 'model.language_model.embed_tokens.weight') return head || (tail && cfg.text.tieWordEmbeddings);
    if (n === 'model.language_model.norm.weight' || n === 'lm_head.weight') return tail;
    return false; // not a Qwen3-VL weight (validateCheckpoint reports it as a warning)
  });
  const w = new GpuWeights();
  let done = 0;
  for (const name of wanted) {
    const t = await src.upload(ctx, name, o.dtype);
    const qkv = /^(model\.visual\.blocks\.\d+\.attn\.)qkv\.(weight|bias)$/.exec(name);
    if (qkv) {
      // [3D, D] → three [D, D] (bias [3D] → three [D]), in q, k, v order.
      const D = t.shape[0] / 3;
      const per = t.size / 3;
      const shape = qkv[2] === 'weight' ? [D, t.shape[1]] : [D];
      ['q', 'k', 'v'].forEach((part, i) => {
        const dst = ctx.empty(shape, t.dtype, `${qkv[1]}${part}.${qkv[2]}`);
        ctx.copy(t.view(i * per, per), dst);
        w.set(`${qkv[1]}${part}.${qkv[2]}`, dst);
      });
      await ctx.sync();
      t.release();
    } else {
      w.set(name, t);
    }
    o.onProgress?.(++done, wanted.length, name);
  }
  await ctx.sync();
  return w;
}
