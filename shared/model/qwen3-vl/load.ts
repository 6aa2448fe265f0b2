/**
 * Uploads a checkpoint's tensors to the GPU in the layout the model code reads: HF names, with
 * the vision blocks' fused `attn.qkv` split into `attn.q/k/v` (so each projection is its own
 * aligned tensor), BF16/F16/F32 converted to the compute dtype chunk by chunk.
 *
 * With `dtype: 'q4'` the decoder's seven projections per layer (q/k/v/o, gate/up/down) are
 * quantized on the host at load time (group-wise int4, `shared/io/quant-q4.ts`); everything else —
 * embeddings (also the tied lm_head, which stays a plain gather table and matmul weight), norms,
 * an untied lm_head and the vision tower — stays in `floatDtype`, as do the q4 scales.
 */
import type { GpuContext } from '../../gpu/context.ts';
import type { Tensor } from '../../gpu/tensor.ts';
import { canQuantizeQ4, Q4_DEFAULT_GROUP, quantizeQ4 } from '../../io/quant-q4.ts';
import { QuantizedWeight } from '../../kernels/linear/q4.ts';
import type { Qwen3VLConfig } from './config.ts';
import type { LayerRange } from './text.ts';
import { GpuWeights } from './weights.gpu.ts';

/** How model weights are held on the GPU: f32, f16, or q4 projections with f16/f32 for the rest. */
export type ModelDType = 'f32' | 'f16' | 'q4';

/** Where tensors come from: a checkpoint reader that uploads one tensor to the GPU. */
export interface TensorUploader {
  names(): string[];
  shape(name: string): readonly number[];
  upload(ctx: GpuContext, name: string, dtype: 'f32' | 'f16'): Promise<Tensor>;
  /**
   * Optional: uploads a 2-D tensor as q4, streaming (see `uploadTensorQ4`). Without it the
   * loader uploads the tensor as f32, reads it back, quantizes it and uploads the result.
   */
  uploadQ4?(ctx: GpuContext, name: string, o: { groupSize: number; scaleDtype: 'f32' | 'f16' }): Promise<QuantizedWeight>;
}

/** Decoder weights that `dtype: 'q4'` quantizes: the attention and MLP projections. */
const Q4_TARGET = /^model\.language_model\.layers\.\d+\.(self_attn\.[qkvo]_proj|mlp\.(gate|up|down)_proj)\.weight$/;

/** True when `dtype: 'q4'` stores this weight as q4 (a decoder projection whose K the group size divides). */
export function isQ4Target(name: string, shape: readonly number[], groupSize = Q4_DEFAULT_GROUP): boolean {
  return Q4_TARGET.test(name) && shape.length === 2 && canQuantizeQ4(shape[1], groupSize);
}

export interface LoadOptions {
  /**
   * Weight dtype on the GPU: f32 for exact comparisons; f16 halves memory where supported; q4
   * quantizes the decoder projections (4.5 bits per weight with f16 scales).
   */
  dtype: ModelDType;
  /** With `dtype: 'q4'`: the type of everything not quantized, and of the scales (default: the adapter's weight dtype). */
  floatDtype?: 'f32' | 'f16';
  /** With `dtype: 'q4'`: elements per scale along K (default 32). */
  groupSize?: number;
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
  const floatDtype = o.dtype === 'q4' ? (o.floatDtype ?? ctx.variants.weights) : o.dtype;
  const groupSize = o.groupSize ?? Q4_DEFAULT_GROUP;
  let done = 0;
  for (const name of wanted) {
    if (o.dtype === 'q4' && isQ4Target(name, src.shape(name), groupSize)) {
      w.set(name, await uploadQ4(ctx, src, name, groupSize, floatDtype));
      o.onProgress?.(++done, wanted.length, name);
      continue;
    }
    const t = await src.upload(ctx, name, floatDtype);
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

/** One weight as q4: streamed by the uploader when it can, else through an f32 round trip. */
async function uploadQ4(ctx: GpuContext, src: TensorUploader, name: string, groupSize: number, scaleDtype: 'f32' | 'f16'): Promise<QuantizedWeight> {
  if (src.uploadQ4) return src.uploadQ4(ctx, name, { groupSize, scaleDtype });
  const t = await src.upload(ctx, name, 'f32');
  const [N, K] = t.shape;
  let values: Float32Array;
  try {
    values = await ctx.readF32(t);
  } finally {
    t.release();
  }
  return QuantizedWeight.upload(ctx, quantizeQ4(values, N, K, { groupSize, scaleDtype }), name);
}
