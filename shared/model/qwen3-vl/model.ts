/**
 * `Qwen3VLForConditionalGeneration` on WebGPU, top-down like `modeling_qwen3_vl.py`:
 * embed_tokens → vision features scattered into the pad positions → decoder layers (DeepStack
 * added after the first layers) → final norm → lm_head.
 */
import type { GpuContext } from '../../gpu/context.ts';
import type { Tensor } from '../../gpu/tensor.ts';
import { gather } from '../../kernels/embedding/index.ts';
import { rmsNorm } from '../../kernels/norm/index.ts';
import type { Qwen3VLConfig } from './config.ts';
import { PagedKvCache } from './kv-cache.ts';
import { getRopeIndex, MmTokenType, mmTokenTypes } from './rope-index.ts';
import {
  type ChunkArgs,
  type DecodeBatchArgs,
  type DeepstackInput,
  type LayerRange,
  linearRowGroups,
  textLayersDecodeBatch,
  textLayersForward,
} from './text.ts';
import type { TraceFn } from './trace.ts';
import { type Grid, type VisionOutput, visionForward } from './vision.ts';
import type { GpuWeights } from './weights.gpu.ts';

export interface VisualInputs {
  /** Official-processor pixel values `[P, 1536]` of all images, and their grids. */
  images?: { pixelValues: Float32Array; grids: readonly Grid[] };
  /**
   * Instead of `images`: the images' vision-tower output, already computed (batched with other
   * requests, or from the vision cache), rows in image order. `prepare` does not release it.
   */
  imageFeatures?: { features: VisionOutput; grids: readonly Grid[] };
  videos?: { pixelValues: Float32Array; grids: readonly Grid[] };
}

/** A prompt made ready for the decoder: embeddings, positions and DeepStack features. */
export interface PreparedPrompt {
  /** Token embeddings with vision features scattered in, `[S, hidden]`. */
  embeds: Tensor;
  positions: [Int32Array, Int32Array, Int32Array];
  ropeDelta: number;
  /** DeepStack features `[visual tokens, hidden]` per level, in sequence order over images and videos. */
  deepstack: Tensor[];
  /** Runs of visual positions: [start, count, feature row]. */
  visualRuns: { row: number; featureRow: number; count: number }[];
  release(): void;
}

export class Qwen3VLModel {
  constructor(
    readonly ctx: GpuContext,
    readonly config: Qwen3VLConfig,
    readonly weights: GpuWeights,
    /** Decoder layers held on this device. */
    readonly layers: LayerRange = [0, config.text.numLayers],
  ) {}

  /** Embedding weight and lm_head weight (tied to the embedding when the config says so). */
  private lmHeadWeight(): Tensor {
    return this.config.text.tieWordEmbeddings
      ? this.weights.get('model.language_model.embed_tokens.weight')
      : this.weights.get('lm_head.weight');
  }

  /** A paged KV cache for this model's layers. */
  createKvCache(o: { numBlocks: number; blockSize?: number; dtype?: 'f32' | 'f16' }): PagedKvCache {
    return new PagedKvCache(this.ctx, {
      ...o,
      layers: this.layers,
      numKvHeads: this.config.text.numKvHeads,
      headDim: this.config.text.headDim,
    });
  }

  /** Runs the vision tower on one modality's pixels. */
  encodeVision(pixelValues: Float32Array, grids: readonly Grid[], trace?: TraceFn): VisionOutput {
    const px = this.ctx.upload(pixelValues, [pixelValues.length / 1536, 1536], 'f32', 'pixel_values');
    const out = visionForward(this.ctx, this.config, this.weights, px, grids, trace);
    px.release();
    return out;
  }

  /**
   * Embeds a prompt: token embeddings, vision features at the pad positions (images and videos
   * interleaved in sequence order), 3-axis positions and DeepStack inputs.
   */
  prepare(inputIds: ArrayLike<number>, visual: VisualInputs = {}, trace?: TraceFn): PreparedPrompt {
    const { ctx, config } = this;
    const S = inputIds.length;
    const Hd = config.text.hiddenSize;
    const ids = ctx.upload(Uint32Array.from(inputIds as ArrayLike<number>), [S], 'u32', 'input_ids');
    const embeds = ctx.empty([S, Hd], 'f32', 'inputs_embeds');
    gather(ctx, { ids, table: this.weights.get('model.language_model.embed_tokens.weight'), out: embeds, hostIds: inputIds });
    ids.release();
    const rope = getRopeIndex({
      inputIds,
      imageGridThw: visual.imageFeatures?.grids ?? visual.images?.grids,
      videoGridThw: visual.videos?.grids,
      imageTokenId: config.imageTokenId,
      videoTokenId: config.videoTokenId,
      spatialMergeSize: config.vision.spatialMergeSize,
    });
    const img = visual.imageFeatures
      ? visual.imageFeatures.features
      : visual.images
        ? this.encodeVision(visual.images.pixelValues, visual.images.grids, trace)
        : null;
    const vid = visual.videos ? this.encodeVision(visual.videos.pixelValues, visual.videos.grids, trace) : null;
    // Scatter: runs of image pads take rows of img.merged in order, runs of video pads of vid.merged.
    const types = mmTokenTypes(inputIds, config.imageTokenId, config.videoTokenId);
    const visualRuns: PreparedPrompt['visualRuns'] = [];
    const nImg = img?.tokens ?? 0;
    const nVis = nImg + (vid?.tokens ?? 0);
    const levels = Math.max(img?.deepstack.length ?? 0, vid?.deepstack.length ?? 0);
    const deepstack: Tensor[] = [];
    for (let l = 0; l < levels && nVis > 0; l++) deepstack.push(ctx.empty([nVis, Hd], 'f32', `deepstack.${l}`));
    let imgRow = 0;
    let vidRow = 0;
    let featureRow = 0;
    for (let i = 0; i < S; ) {
      const type = types[i];
      if (type === MmTokenType.Text) {
        i++;
        continue;
      }
      let j = i;
      while (j < S && types[j] === type) j++;
      const count = j - i;
      const src = type === MmTokenType.Image ? img : vid;
      const srcRow = type === MmTokenType.Image ? imgRow : vidRow;
      if (!src || srcRow + count > src.tokens) {
        throw new RangeError(`prompt has more ${type === MmTokenType.Image ? 'image' : 'video'} pad tokens than vision features`);
      }
      ctx.copy(src.merged.view(srcRow * Hd, count * Hd), embeds.view(i * Hd, count * Hd));
      for (let l = 0; l < levels; l++) {
        ctx.copy(src.deepstack[l].view(srcRow * Hd, count * Hd), deepstack[l].view(featureRow * Hd, count * Hd));
      }
      visualRuns.push({ row: i, featureRow, count });
      if (type === MmTokenType.Image) imgRow += count;
      else vidRow += count;
      featureRow += count;
      i = j;
    }
    if (imgRow !== nImg || vidRow !== (vid?.tokens ?? 0)) {
      throw new RangeError(`prompt has ${imgRow} image and ${vidRow} video pad tokens for ${nImg} and ${vid?.tokens ?? 0} vision features`);
    }
    if (!visual.imageFeatures) img?.release();
    vid?.release();
    return {
      embeds,
      positions: rope.positions,
      ropeDelta: rope.ropeDelta,
      deepstack,
      visualRuns,
      release() {
        embeds.release();
        for (const d of deepstack) d.release();
      },
    };
  }

  /** Runs this model's layers over a chunk (see `textLayersForward`). */
  forward(kv: PagedKvCache, args: ChunkArgs, range: LayerRange = this.layers): void {
    textLayersForward(this.ctx, this.config, this.weights, kv, range, args);
  }

  /** One decode step of several sequences (see `textLayersDecodeBatch`). */
  decodeBatch(kv: PagedKvCache, args: DecodeBatchArgs, range: LayerRange = this.layers): void {
    textLayersDecodeBatch(this.ctx, this.config, this.weights, kv, range, args);
  }

  /**
   * Final norm + lm_head on `rows` rows of `hidden` starting at `firstRow`: logits `[rows, V]`.
   */
  logits(hidden: Tensor, firstRow: number, rows: number, trace?: TraceFn): Tensor {
    const { ctx, config } = this;
    const Hd = config.text.hiddenSize;
    const V = config.text.vocabSize;
    const normed = ctx.empty([rows, Hd], 'f32', 'final_norm');
    rmsNorm(ctx, {
      x: hidden,
      xOffset: firstRow * Hd,
      y: normed,
      rows,
      n: Hd,
      eps: config.text.rmsNormEps,
      weight: this.weights.get('model.language_model.norm.weight'),
    });
    trace?.('text.final_norm', normed, { shape: [rows, Hd] });
    const logits = ctx.empty([rows, V], 'f32', 'logits');
    // Row groups: a row's logits do not depend on how many rows are computed with it.
    linearRowGroups(ctx, { x: normed, w: this.lmHeadWeight(), y: logits, M: rows, N: V, K: Hd });
    normed.release();
    return logits;
  }
}

/** Rows of a chunk [start, start+T) that are visual, as runs relative to the chunk. */
export function deepstackForChunk(p: PreparedPrompt, start: number, T: number): DeepstackInput | undefined {
  if (p.deepstack.length === 0) return undefined;
  const runs: { row: number; featureRow: number; count: number }[] = [];
  for (const r of p.visualRuns) {
    const a = Math.max(r.row, start);
    const b = Math.min(r.row + r.count, start + T);
    if (a < b) runs.push({ row: a - start, featureRow: r.featureRow + (a - r.row), count: b - a });
  }
  return runs.length ? { features: p.deepstack, runs } : undefined;
}
