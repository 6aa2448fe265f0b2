/**
 * generate() with vLLM penalties and stop strings, on the small golden checkpoint (f32): every
 * greedy token must be the argmax of the reference penalties applied to that step's raw logits,
 * and stop strings must end generation with the text cut before them.
 */
import { fixtureBytes, fixtureJson } from '#fixtures';
import { describe, expect, it } from 'vitest';
import { generate } from '../../shared/engine/generate.ts';
import { SamplingError } from '../../shared/kernels/sample/top-k-top-p.ts';
import { parseQwen3VLConfig } from '../../shared/model/qwen3-vl/config.ts';
import { loadWeights } from '../../shared/model/qwen3-vl/load.ts';
import { Qwen3VLModel } from '../../shared/model/qwen3-vl/model.ts';
import { penaltiesRef } from '../../shared/reference/penalties.ts';
import { argmaxRef } from '../../shared/reference/sample.ts';
import { safetensorsBytes } from '../support/checkpoint.ts';
import { type GoldenCase, tensor } from '../support/golden.ts';
import { testContext } from '../support/gpu.ts';

const ctx = await testContext();

describe.skipIf(!ctx)('generate: penalties and stop strings', () => {
  async function setup() {
    const c = ctx!;
    const dir = 'golden/smallvocab/';
    const config = parseQwen3VLConfig(await fixtureJson(`${dir}config.json`));
    const gold = await fixtureJson<GoldenCase>(`${dir}case_text.json`);
    const weights = await loadWeights(c, config, safetensorsBytes(await fixtureBytes(`${dir}model.safetensors`)), { dtype: 'f32' });
    const model = new Qwen3VLModel(c, config, weights);
    const ids = tensor(gold, 'input_ids').data;
    const golden = tensor(gold, 'generated_ids').data;
    return { c, model, weights, ids, golden };
  }

  it('applies the penalties before argmax at every step, and leaves the default path alone', async () => {
    const { c, model, weights, ids, golden } = await setup();
    // A negative presence penalty rewards repeats: the first token must then win every later step,
    // which shows the penalties really ran (the raw argmax alone gives the golden tokens).
    const settings = { repetition: 1.3, frequency: 0.5, presence: -40 };
    const raw: Promise<Float32Array>[] = [];
    let prompt = model.prepare(ids);
    let kv = model.createKvCache({ numBlocks: 8, blockSize: 16 });
    // ctx.read submits its copy at call time: these are the logits before the penalties.
    const result = await generate(model, kv, prompt, {
      maxNewTokens: 8,
      chunkSize: 5,
      penalties: settings,
      promptIds: ids,
      onLogits: (l) => raw.push(c.readF32(l)),
    });
    expect(result.tokens.length).toBe(8);
    for (let step = 0; step < result.tokens.length; step++) {
      const want = argmaxRef(penaltiesRef(await raw[step], ids, result.tokens.slice(0, step), settings));
      expect(result.tokens[step], `step ${step}`).toBe(want);
    }
    expect(result.tokens).toEqual(Array(8).fill(golden[0]));
    expect(result.text).toBeUndefined();
    prompt.release();
    kv.release();

    // Penalties that are off, and no stop option: the golden tokens, same result shape.
    prompt = model.prepare(ids);
    kv = model.createKvCache({ numBlocks: 8, blockSize: 16 });
    const plain = await generate(model, kv, prompt, { maxNewTokens: 8, chunkSize: 5, penalties: { repetition: 1 } });
    expect(plain).toEqual({ tokens: golden, finishReason: 'length', promptTokens: ids.length });
    await expect(generate(model, kv, prompt, { maxNewTokens: 1, penalties: { repetition: 1.1 } })).rejects.toThrow(SamplingError);
    prompt.release();
    kv.release();
    weights.release();
  });

  it('stops on a stop string spanning two tokens, emitting the text before it', async () => {
    const { model, weights, ids, golden } = await setup();
    const decoder = (id: number) => `<${id}>`;
    // A stop string that starts inside token 3's delta and ends inside token 4's.
    const stop = `${decoder(golden[3]).slice(2)}${decoder(golden[4]).slice(0, 2)}`;
    const full = golden.map(decoder).join('');
    const at = full.indexOf(stop);
    const end = golden.findIndex((_, i) => golden.slice(0, i + 1).map(decoder).join('').length >= at + stop.length);
    const shown: string[] = [];
    const prompt = model.prepare(ids);
    const kv = model.createKvCache({ numBlocks: 8, blockSize: 16 });
    const result = await generate(model, kv, prompt, {
      maxNewTokens: 8,
      chunkSize: 5,
      stop: { strings: ['never here', stop], decoder, flush: () => '', onText: (t) => shown.push(t) },
    });
    expect(result.finishReason).toBe('stop');
    expect(result.stopString).toBe(stop);
    expect(result.tokens).toEqual(golden.slice(0, end + 1));
    expect(result.text).toBe(full.slice(0, at));
    expect(shown.join('')).toBe(result.text);

    // No stop string seen: the whole text, held tails included, and finishReason 'length'.
    const kv2 = model.createKvCache({ numBlocks: 8, blockSize: 16 });
    const all = await generate(model, kv2, prompt, {
      maxNewTokens: 8,
      chunkSize: 5,
      stop: { strings: [`${full}!`], decoder },
    });
    expect(all).toEqual({ tokens: golden, finishReason: 'length', promptTokens: ids.length, text: full });
    prompt.release();
    kv.release();
    kv2.release();
    weights.release();
  });
});
