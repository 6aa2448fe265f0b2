/**
 * The continuous-batching `LocalEngine` on the real-vocabulary golden checkpoint (f32, Node/Dawn):
 * every e2e golden case run concurrently gives the official greedy tokens (batched decode, chunked
 * prefill interleaved, images encoded together), also with a KV cache small enough to force
 * preemptions; prefix caching reuses blocks across turns without changing tokens; a repeated image
 * skips the vision tower through the vision cache; priorities order admission without starving;
 * an abort frees the blocks.
 */
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { openModelDir } from '../../edge-node/io/model-dir.ts';
import type { GenerationEvent, PriorityClass } from '../../shared/engine/engine.ts';
import { LocalEngine, type LocalEngineOptions } from '../../shared/engine/local-engine.ts';
import { MemoryVisionCache } from '../../shared/engine/vision-cache.ts';
import { e2eRequest, loadE2eCase } from '../support/e2e-cases.ts';
import { testContext } from '../support/gpu.ts';

const golden = fileURLToPath(new URL('../fixtures/golden/', import.meta.url));
const ctx = await testContext();

const CASES = [
  'case_one_image',
  'case_two_images_one_turn',
  'case_image_earlier_turn',
  'case_image_resized',
  'case_special_token_text',
  'case_system_prompt',
  'case_text_multiturn_unicode',
].map(loadE2eCase);

const request = e2eRequest;

async function collect(events: AsyncIterable<GenerationEvent>): Promise<{ tokens: number[]; text: string; done: Extract<GenerationEvent, { kind: 'done' }> }> {
  const tokens: number[] = [];
  let text = '';
  for await (const ev of events) {
    if (ev.kind === 'delta') {
      tokens.push(...ev.tokenIds);
      text += ev.text;
    } else return { tokens, text, done: ev };
  }
  throw new Error('stream ended without done');
}

describe.skipIf(!ctx)('LocalEngine: continuous batching, caches, priorities', async () => {
  const opened = ctx ? await openModelDir(ctx, `${golden}realvocab`, { dtype: 'f32' }) : null;
  afterAll(() => opened?.release());
  const engine = (o: Partial<LocalEngineOptions> = {}) =>
    new LocalEngine({
      modelId: 'realvocab',
      model: { ...opened!, tokenizer: opened!.tokenizer!, template: opened!.template! },
      // The golden runs generate 8 tokens without stopping at EOS.
      eosTokenIds: [],
      chunkSize: 32,
      ...o,
    });

  it('runs every golden case at once and each gets the official greedy tokens', async () => {
    const e = engine();
    const results = await Promise.all(CASES.map((c) => collect(e.stream(request(c)))));
    results.forEach((r, i) => {
      expect(r.tokens, CASES[i].case).toEqual(CASES[i].generated_ids.data);
      expect(r.done.finishReason).toBe('length');
      expect(r.done.completionTokens).toBe(8);
    });
    const c = e.stats().counters!;
    // Decoding was batched: far fewer decode steps than decoded tokens (prefill chunks of the
    // later requests interleave with the decode steps of the earlier ones).
    expect(c.decodeRows).toBe(CASES.length * 7);
    expect(c.decodeSteps).toBeLessThan(c.decodeRows * 0.7);
    // Five images in four resolutions, arriving together: one tower pass per resolution.
    expect(c.visionImagesEncoded).toBe(5);
    expect(c.visionPasses).toBeLessThan(c.visionImagesEncoded);
    expect(e.stats()).toMatchObject({ running: 0, waiting: 0 });
    await e.close();
  });

  it('preempts and recomputes when the KV cache runs out, without changing tokens', async () => {
    // 40 blocks of 4 tokens: three ~38-token prompts are admitted (10 blocks each), then their
    // answers outgrow the cache and the least urgent sequences are preempted and recomputed.
    const bytesPerToken = 2 * 3 * 2 * 16 * 4; // K+V × layers × kv heads × head dim × f32
    const cases = [CASES[4], CASES[5], CASES[4]];
    const e = engine({ blockSize: 4, kvCacheBytes: bytesPerToken * 4 * 40, prefixCaching: false });
    const results = await Promise.all(cases.map((c, i) => collect(e.stream(request(c, { id: `p${i}` }, 40)))));
    expect(e.stats().counters!.preemptions).toBeGreaterThan(0);
    expect(e.stats().kvUsage).toBe(0);
    await e.close();
    const solo = engine({ prefixCaching: false });
    for (const [i, r] of results.entries()) {
      expect(r.tokens.slice(0, 8), cases[i].case).toEqual(cases[i].generated_ids.data);
      if (i < 2) expect(r.tokens, cases[i].case).toEqual((await collect(solo.stream(request(cases[i], {}, 40)))).tokens);
    }
    expect(results[2].tokens).toEqual(results[0].tokens);
    await solo.close();
  });

  it('serves a request that fills the KV cache exactly, and refuses one that cannot fit', async () => {
    const bytesPerToken = 2 * 3 * 2 * 16 * 4;
    const e = engine({ blockSize: 4, kvCacheBytes: bytesPerToken * 4 * 10 }); // 40 tokens
    const fits = await collect(e.stream(request(CASES[4], {}, 2))); // 38-token prompt + 2
    expect(fits.tokens).toEqual(CASES[4].generated_ids.data.slice(0, 2));
    await expect(collect(e.stream(request(CASES[4], {}, 3)))).rejects.toThrow(/maximum context length is 40 tokens/);
    // Without max_tokens the request gets what the cache leaves.
    const auto = await collect(e.stream(request(CASES[4], { sampling: { maxTokens: 64, maxTokensAuto: true, temperature: 0, topP: 1, topK: 0 } })));
    expect(auto.done.completionTokens).toBe(2);
    await e.close();
  });

  it('reuses the blocks of an earlier turn (prefix cache) and the image features (vision cache)', async () => {
    const visionCache = new MemoryVisionCache();
    const e = engine({ visionCache });
    const c = CASES[0];
    const first = await collect(e.stream(request(c, { sessionId: 's1' }, 20)));
    const before = e.stats().counters!;
    expect(before.visionImagesEncoded).toBe(1);
    // Turn 2: the same conversation plus the answer and a follow-up question.
    const turn2 = request(c, { sessionId: 's1' });
    turn2.messages.push({ role: 'assistant', content: first.text }, { role: 'user', content: 'And the colours?' });
    const second = await collect(e.stream(turn2));
    const after = e.stats().counters!;
    expect(after.prefixHitTokens - before.prefixHitTokens).toBeGreaterThanOrEqual(80); // the image and the question
    expect(after.visionCacheHits).toBe(1);
    expect(after.visionImagesEncoded).toBe(1); // the tower did not run again
    // The same tokens as an engine without any cache.
    const plain = engine({ prefixCaching: false });
    const want = await collect(plain.stream({ ...turn2, sessionId: undefined }));
    expect(second.tokens).toEqual(want.tokens);
    await e.close();
    await plain.close();
  });

  it('admits by priority class, and aging lets an old batch request pass a new GUI one', async () => {
    const order: string[] = [];
    const run = (e: LocalEngine, id: string, priority: PriorityClass) =>
      collect(e.stream({ ...request(CASES[5], { id, priority }, 3) })).then(() => order.push(id));
    const e = engine({ maxNumSeqs: 1 });
    const a = run(e, 'batch-1', 'batch');
    await new Promise((r) => setTimeout(r, 5));
    const rest = [run(e, 'batch-2', 'batch'), run(e, 'interactive', 'interactive'), run(e, 'gui', 'gui')];
    await Promise.all([a, ...rest]);
    expect(order).toEqual(['batch-1', 'gui', 'interactive', 'batch-2']);
    await e.close();

    order.length = 0;
    const aged = engine({ maxNumSeqs: 1, agingMs: 1 });
    const b1 = run(aged, 'batch-1', 'batch');
    const b2 = run(aged, 'batch-2', 'batch');
    await new Promise((r) => setTimeout(r, 20));
    await Promise.all([b1, b2, run(aged, 'gui', 'gui')]);
    expect(order).toEqual(['batch-1', 'batch-2', 'gui']);
    await aged.close();
  });

  it('an abort ends the request at once and frees its blocks', async () => {
    const e = engine({ prefixCaching: false });
    const ac = new AbortController();
    const other = collect(e.stream(request(CASES[6], {}, 30)));
    let deltas = 0;
    let done: GenerationEvent | null = null;
    for await (const ev of e.stream(request(CASES[5], { signal: ac.signal }, 500))) {
      if (ev.kind === 'delta' && ++deltas === 2) ac.abort();
      if (ev.kind === 'done') done = ev;
    }
    expect(done).toMatchObject({ kind: 'done', finishReason: 'abort' });
    expect((done as Extract<GenerationEvent, { kind: 'done' }>).completionTokens).toBeLessThan(10);
    expect((await other).tokens.length).toBe(30);
    expect(e.stats().kvUsage).toBe(0);
    await e.close();
  });
});
