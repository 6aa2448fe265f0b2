/**
 * One command submission per decode step: on the real-vocabulary golden checkpoint (f32,
 * Node/Dawn) a batched decode step — embed, layers, final norm, lm_head, argmax, readback of the
 * B sampled ids — reaches the queue as exactly one `queue.submit`, allocates no new buffer once
 * the pool is warm, and a prefill chunk submits at most once. The engine's greedy decode keeps the
 * same budget: one submit per step, and the same tokens at every batch size.
 */
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { openModelDir } from '../../edge-node/io/model-dir.ts';
import { LocalEngine } from '../../shared/engine/local-engine.ts';
import { gather } from '../../shared/kernels/embedding/index.ts';
import { argmax } from '../../shared/kernels/sample/index.ts';
import { testContext } from '../support/gpu.ts';

const golden = fileURLToPath(new URL('../fixtures/golden/', import.meta.url));
const ctx = await testContext();

describe.skipIf(!ctx)('decode step: one submit, no per-token allocation', async () => {
  const c = ctx!;
  const opened = ctx ? await openModelDir(c, `${golden}realvocab`, { dtype: 'f32' }) : null;
  afterAll(() => opened?.release());

  it('a batched decode step is one submit and one readback; a prefill chunk at most one submit', async () => {
    const { model, config } = opened!;
    const Hd = config.text.hiddenSize;
    const B = 12; // more than one gemv row group
    const P = 20;
    const kv = model.createKvCache({ numBlocks: B * 4 + 2, blockSize: 16 });
    const embed = model.weights.get('model.language_model.embed_tokens.weight');
    const seqs = Array.from({ length: B }, (_, i) => i);
    const hidden = c.empty([B, Hd], 'f32', 'test.hidden');
    const idT = c.empty([B], 'u32', 'test.ids');
    const out = c.empty([B], 'u32', 'test.sampled');
    const first = c.empty([1], 'u32', 'test.first');
    try {
      // Prefill every sequence (one chunk each): at most one submit per chunk.
      for (const s of seqs) {
        const prompt = model.prepare(Uint32Array.from({ length: P }, (_, i) => 1000 + s * 31 + i));
        await c.sync();
        kv.blocks.grow(s, P);
        const h = c.empty([P, Hd], 'f32', 'test.prefill');
        const before = c.stats.submits;
        c.copy(prompt.embeds, h);
        model.forward(kv, { hidden: h, seq: s, start: 0, positions: prompt.positions });
        const logits = model.logits(h, P - 1, 1);
        c.run(argmax(c, { logits, out: first }));
        c.copy(first, out.view(s, 1));
        logits.release();
        h.release();
        expect(c.stats.submits - before).toBe(0); // nothing submitted while encoding
        await c.sync();
        expect(c.stats.submits - before).toBeLessThanOrEqual(1);
        prompt.release();
      }
      let next = Array.from(await c.read(out));
      const created: number[] = [];
      for (let step = 0; step < 4; step++) {
        await c.sync();
        const submits = c.stats.submits;
        const hazards = c.stats.hazardFlushes;
        c.write(idT, Uint32Array.from(next));
        gather(c, { ids: idT, table: embed, out: hidden, hostIds: next });
        for (const s of seqs) kv.blocks.grow(s, 1);
        const pos = P + step;
        const p = new Int32Array(B).fill(pos);
        model.decodeBatch(kv, { hidden, seqs, starts: new Array(B).fill(pos), positions: [p, p, p] });
        const logits = model.logits(hidden, 0, B);
        c.run(argmax(c, { logits, out }));
        logits.release();
        expect(c.stats.submits).toBe(submits); // the per-step uploads did not flush the batch
        next = Array.from(await c.read(out));
        expect(c.stats.submits - submits).toBe(1);
        expect(c.stats.hazardFlushes).toBe(hazards);
        expect(next).toHaveLength(B);
        for (const id of next) expect(id).toBeLessThan(config.text.vocabSize);
        created.push(c.pool.stats.created);
      }
      // After the first step warmed the pool, steps reuse its buffers: no allocation per token.
      expect(new Set(created.slice(1)).size).toBe(1);
    } finally {
      hidden.release();
      first.release();
      idT.release();
      out.release();
      kv.release();
    }
  });

  it('writing a buffer the open batch still reads submits the batch first (the old data is used)', async () => {
    const a = c.upload(new Float32Array([1, 2, 3, 4]), [4], 'f32', 'test.a');
    const b = c.empty([4], 'f32', 'test.b');
    await c.sync();
    const submits = c.stats.submits;
    c.copy(a, b);
    c.write(a, new Float32Array([5, 6, 7, 8])); // must not overtake the encoded copy
    expect(c.stats.submits - submits).toBe(1);
    expect(Array.from(await c.readF32(b))).toEqual([1, 2, 3, 4]);
    expect(Array.from(await c.readF32(a))).toEqual([5, 6, 7, 8]);
    // A fresh upload never takes a pooled buffer the open batch uses, so it does not flush.
    const z = c.zeros([4], 'f32', 'test.z');
    c.copy(a, b);
    b.release();
    const before = c.stats.submits;
    const u = c.upload(new Float32Array([9, 9, 9, 9]), [4], 'f32', 'test.u');
    expect(c.stats.submits).toBe(before);
    expect(Array.from(await c.readF32(z))).toEqual([0, 0, 0, 0]);
    expect(Array.from(await c.readF32(u))).toEqual([9, 9, 9, 9]);
    for (const t of [a, z, u]) t.release();
  });

  it('the engine decodes greedily with one submit per decode step', async () => {
    const e = new LocalEngine({
      modelId: 'realvocab',
      model: { ...opened!, tokenizer: opened!.tokenizer!, template: opened!.template! },
      eosTokenIds: [],
      chunkSize: 64,
    });
    const req = (id: string, text: string) => ({
      id,
      messages: [{ role: 'user', content: text }],
      images: [],
      sampling: { maxTokens: 6, temperature: 0, topP: 1, topK: 0 },
    });
    const run = async (texts: string[]) => {
      const submits = c.stats.submits;
      const steps0 = e.stats().counters!.decodeSteps;
      const outs = await Promise.all(
        texts.map(async (t, i) => {
          const ids: number[] = [];
          for await (const ev of e.stream(req(`r${i}`, t))) if (ev.kind === 'delta') ids.push(...ev.tokenIds);
          return ids;
        }),
      );
      return { outs, submits: c.stats.submits - submits, steps: e.stats().counters!.decodeSteps - steps0 };
    };
    const texts = ['Hello there', 'What is a cat?', 'Count to three'];
    const solo = await run([texts[1]]);
    const batched = await run(texts);
    expect(batched.outs[1]).toEqual(solo.outs[0]); // batch invariance
    // Each request: one prefill chunk (with its first token), then 5 decode steps shared by the batch.
    expect(solo.steps).toBe(5);
    expect(solo.submits).toBeLessThanOrEqual(solo.steps + 1);
    expect(batched.submits).toBeLessThanOrEqual(batched.steps + texts.length);
    await e.close();
  });
});
