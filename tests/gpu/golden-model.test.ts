/**
 * The model against the official Hugging Face outputs (tests/fixtures/golden), computing in f32:
 * vision merger and DeepStack outputs and every text-layer input within 1e-4 abs, logits within
 * 2e-4 abs, the 8 greedy tokens identical.
 */
import { fixtureBytes, fixtureJson } from '#fixtures';
import { describe, expect, it } from 'vitest';
import { generate } from '../../shared/engine/generate.ts';
import type { Tensor } from '../../shared/gpu/tensor.ts';
import { parseQwen3VLConfig } from '../../shared/model/qwen3-vl/config.ts';
import { loadWeights } from '../../shared/model/qwen3-vl/load.ts';
import { deepstackForChunk, Qwen3VLModel, type VisualInputs } from '../../shared/model/qwen3-vl/model.ts';
import type { TraceFn } from '../../shared/model/qwen3-vl/trace.ts';
import { safetensorsBytes } from '../support/checkpoint.ts';
import { type GoldenCase, type GoldenTensor, rows3, tensor } from '../support/golden.ts';
import { environment, testContext } from '../support/gpu.ts';

const ctx = await testContext();

/** Hidden states and vision outputs: f32 sums of a few hundred terms, 1e-4 abs as the issue states. */
const HIDDEN_ATOL = 1e-4;
/** Logits: one more 32-term dot product over the final norm, 2e-4 abs as the issue states. */
const LOGITS_ATOL = 2e-4;

function maxAbsDiff(got: Float32Array, want: number[]): number {
  expect(got.length).toBe(want.length);
  let m = 0;
  for (let i = 0; i < want.length; i++) m = Math.max(m, Math.abs(got[i] - want[i]));
  return m;
}

function visual(c: GoldenCase): VisualInputs {
  const v: VisualInputs = {};
  if (c.pixel_values) v.images = { pixelValues: Float32Array.from(tensor(c, 'pixel_values').data), grids: rows3(c.image_grid_thw as GoldenTensor) };
  if (c.pixel_values_videos) {
    v.videos = { pixelValues: Float32Array.from(tensor(c, 'pixel_values_videos').data), grids: rows3(c.video_grid_thw as GoldenTensor) };
  }
  return v;
}

const cases = ['smallvocab', 'realvocab'].flatMap((variant) => ['text', 'image', 'video'].map((kind) => [variant, kind] as const));

describe.skipIf(!ctx)(`Qwen3-VL against the official implementation (f32, ${environment})`, () => {
  it.each(cases)('%s %s', async (variant, kind) => {
    const c = ctx!;
    const dir = `golden/${variant}/`;
    const config = parseQwen3VLConfig(await fixtureJson(`${dir}config.json`));
    const gold = await fixtureJson<GoldenCase>(`${dir}case_${kind}.json`);
    const weights = await loadWeights(c, config, safetensorsBytes(await fixtureBytes(`${dir}model.safetensors`)), { dtype: 'f32' });
    const model = new Qwen3VLModel(c, config, weights);
    const ids = tensor(gold, 'input_ids').data;
    const S = ids.length;

    const snaps = new Map<string, Promise<Float32Array>>();
    const trace: TraceFn = (point, t, info) => {
      snaps.set(`${point}${info.index ?? ''}`, c.readF32(t.view(0, info.shape.reduce((a, b) => a * b, 1))));
    };
    const prompt = model.prepare(ids, visual(gold), trace);
    // Positions and rope delta, identical.
    const pos = tensor(gold, 'position_ids').data;
    for (let a = 0; a < 3; a++) expect(Array.from(prompt.positions[a])).toEqual(pos.slice(a * S, (a + 1) * S));
    expect(prompt.ropeDelta).toBe(tensor(gold, 'rope_deltas').data[0]);

    // One-chunk prefill over all positions, for the per-layer and full-logit checks.
    const kv = model.createKvCache({ numBlocks: 8, blockSize: 16 });
    kv.blocks.grow(1, S);
    const hidden = c.empty([S, config.text.hiddenSize], 'f32', 'hidden');
    c.copy(prompt.embeds, hidden);
    model.forward(kv, { hidden, seq: 1, start: 0, positions: prompt.positions, deepstack: deepstackForChunk(prompt, 0, S), trace });
    // Full logits of every position where the case stores them (vocab ≤ 4096), else the last row.
    const V = config.text.vocabSize;
    const rows = V <= 4096 ? S : 1;
    const logits: Tensor = model.logits(hidden, S - rows, rows, trace);
    const lastLogits = await c.readF32(logits.view((rows - 1) * V, V));
    const allLogits = rows === S ? await c.readF32(logits) : null;
    kv.blocks.release(1);

    const report: string[] = [];
    const modality = kind === 'video' ? 'video' : 'image';
    if (kind !== 'text') {
      const merged = maxAbsDiff(await snaps.get('vision.merged')!, tensor(gold, `${modality}_vision_merged`).data);
      report.push(`merged ${merged.toExponential(2)}`);
      expect(merged, 'vision merged').toBeLessThanOrEqual(HIDDEN_ATOL);
      const b0 = maxAbsDiff(await snaps.get('vision.block0_input')!, tensor(gold, `${modality}_vision_block0_input`).data);
      expect(b0, 'vision block0 input').toBeLessThanOrEqual(HIDDEN_ATOL);
      const golds = gold[`${modality}_deepstack`] as GoldenTensor[];
      expect(golds.length).toBe(config.vision.deepstackVisualIndexes.length);
      for (let k = 0; k < golds.length; k++) {
        const d = maxAbsDiff(await snaps.get(`vision.deepstack${k}`)!, golds[k].data);
        expect(d, `deepstack ${k}`).toBeLessThanOrEqual(HIDDEN_ATOL);
      }
    }
    const layerInputs = gold.text_layer_inputs as GoldenTensor[];
    for (let l = 0; l < layerInputs.length; l++) {
      const d = maxAbsDiff(await snaps.get(`text.layer_input${l}`)!, layerInputs[l].data);
      report.push(`layer${l} ${d.toExponential(2)}`);
      expect(d, `text layer ${l} input`).toBeLessThanOrEqual(HIDDEN_ATOL);
    }
    const fnWant = tensor(gold, 'final_norm_output').data.slice((S - rows) * config.text.hiddenSize);
    const fn = maxAbsDiff(await snaps.get('text.final_norm')!, fnWant);
    expect(fn, 'final norm').toBeLessThanOrEqual(HIDDEN_ATOL);
    if (allLogits) {
      const d = maxAbsDiff(allLogits, tensor(gold, 'logits').data);
      report.push(`logits ${d.toExponential(2)}`);
      expect(d, 'logits (all positions)').toBeLessThanOrEqual(LOGITS_ATOL);
    } else {
      const d = maxAbsDiff(lastLogits, tensor(gold, 'logits_last').data);
      report.push(`logits_last ${d.toExponential(2)}`);
      expect(d, 'logits_last').toBeLessThanOrEqual(LOGITS_ATOL);
    }
    logits.release();
    hidden.release();

    // 8 greedy tokens with the paged KV cache, in 5-token prefill chunks.
    const result = await generate(model, kv, prompt, { maxNewTokens: 8, chunkSize: 5, seq: 2 });
    expect(result.tokens).toEqual(tensor(gold, 'generated_ids').data);
    console.log(`[golden ${environment}] ${variant}/${kind}: max|diff| ${report.join(', ')}`);
    prompt.release();
    kv.release();
    weights.release();
  });
});
