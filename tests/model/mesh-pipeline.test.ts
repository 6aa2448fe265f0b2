/**
 * The mesh pipeline on the real-vocabulary golden checkpoint (3 layers, f32 compute, f16 hops),
 * with stages in this process over in-process links: a coordinator holding the head (embeddings,
 * vision, the DeepStack layers) and peers holding the rest give the official greedy tokens for
 * text and image prompts; a peer that goes silent mid-generation is noticed within 2 s, its
 * layers move, their KV caches are rebuilt by replay, and the tokens do not change; a peer that
 * sends garbage (bad checksum, NaN, wrong shape) is evicted and the request completes.
 */
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { openModelDir } from '../../edge-node/io/model-dir.ts';
import type { GenerationEvent, GenerationRequest } from '../../shared/engine/engine.ts';
import { LocalEngine } from '../../shared/engine/local-engine.ts';
import { Qwen3VLModel } from '../../shared/model/qwen3-vl/model.ts';
import { MeshCoordinator, type MeshEvent, MeshUnavailableError } from '../../shared/mesh/coordinator.ts';
import { StageOrderError, StagePeer, StageRunner } from '../../shared/mesh/stage.ts';
import { type LinkFaults, inProcessLink } from '../../shared/mesh/transport.ts';
import { decodeMessage, encodeMessage, frameBytes, type TensorMessage } from '../../shared/mesh/wire.ts';
import { type E2eCase, e2eRequest, loadE2eCase } from '../support/e2e-cases.ts';
import { testContext } from '../support/gpu.ts';

const golden = fileURLToPath(new URL('../fixtures/golden/', import.meta.url));
const ctx = await testContext();

const load = loadE2eCase;
const TEXT = load('case_system_prompt');
const IMAGE = load('case_one_image');
const request = (c: E2eCase, maxTokens = 8): GenerationRequest => e2eRequest(c, {}, maxTokens);

async function collect(events: AsyncIterable<GenerationEvent>, onToken?: (n: number) => void): Promise<number[]> {
  const tokens: number[] = [];
  for await (const ev of events) {
    if (ev.kind === 'delta') {
      // One call per token (a delta may carry several: text held back until it is whole).
      for (const id of ev.tokenIds) {
        tokens.push(id);
        onToken?.(tokens.length);
      }
    }
  }
  return tokens;
}

describe.skipIf(!ctx)('mesh pipeline (in-process stages)', async () => {
  const opened = ctx ? await openModelDir(ctx, `${golden}realvocab`, { dtype: 'f32' }) : null;
  afterAll(() => opened?.release());
  const Hd = opened?.config.text.hiddenSize ?? 0;

  /** A coordinator with head layers [0, head) and in-process peers; `events` records mesh events. */
  async function mesh(head: number, peers: string[], o: { chunkSize?: number; localFallback?: boolean } = {}) {
    const c = ctx!;
    const m = opened!;
    const events: (MeshEvent & { at: number })[] = [];
    const coord = new MeshCoordinator({
      modelId: 'realvocab',
      model: { model: new Qwen3VLModel(c, m.config, m.model.weights, [0, head]), config: m.config, tokenizer: m.tokenizer!, template: m.template!, imageProcessor: m.imageProcessor },
      eosTokenIds: [],
      chunkSize: o.chunkSize ?? 32,
      heartbeatMs: 100,
      peerTimeoutMs: 1000,
      onEvent: (e) => events.push({ ...e, at: performance.now() }),
      ...(o.localFallback ? { localFallback: { numBlocks: 64 } } : {}),
    });
    const links = new Map<string, LinkFaults>();
    const add = async (id: string) => {
      const [coordSide, peerSide] = inProcessLink();
      new StagePeer(peerSide, { ctx: c, config: m.config, weightsFor: async () => m.model.weights, numBlocks: 64 });
      links.set(id, peerSide);
      await coord.addPeer(id, coordSide, { memoryBytes: 100, throughput: 10 });
    };
    for (const id of peers) await add(id);
    return { coord, links, events, add };
  }

  it('three stages give the official greedy tokens for a text prompt; a hop costs hidden × 2 bytes a token plus a small header', async () => {
    const { coord } = await mesh(1, ['B', 'C']);
    expect(coord.stages()).toEqual([
      { peer: 'B', range: [1, 2] },
      { peer: 'C', range: [2, 3] },
    ]);
    const t0 = performance.now();
    const tokens = await collect(coord.stream(request(TEXT)));
    const ms = performance.now() - t0;
    expect(tokens).toEqual(TEXT.generated_ids.data);
    const hops = coord.hops();
    for (const h of hops) {
      expect(h.state).toBe('active');
      expect(h.decodeBytesPerToken).toBe(frameBytes(1, Hd)); // 40 + 12 + 32 × 2
      expect(h.decodeBytesPerToken).toBe(Hd * 2 + 52);
      expect(h.meanRttMs).toBeGreaterThan(0);
      expect(h.pingRttMs).toBeGreaterThan(0);
      expect(h.bandwidthBytesPerS).toBeGreaterThan(0);
    }
    console.log(`mesh text: ${tokens.length} tokens in ${ms.toFixed(0)} ms; hops ${JSON.stringify(hops)}`);
    await coord.close();
  });

  it('a coordinator that runs no decoder layer (mesh-only): a head peer takes embeddings, vision and DeepStack; text, image and concurrent requests give the official tokens', async () => {
    const { coord } = await mesh(0, ['B', 'C', 'D']);
    // The head peer holds every layer that takes DeepStack features ([0, 2) here); D is spare.
    expect(coord.stages()).toEqual([
      { peer: 'B', range: [0, 2] },
      { peer: 'C', range: [2, 3] },
    ]);
    // Two requests in flight at once: their chunks interleave in the stages.
    const [a, b] = await Promise.all([collect(coord.stream(request(TEXT))), collect(coord.stream({ ...request(TEXT), id: 'again' }))]);
    expect(a).toEqual(TEXT.generated_ids.data);
    expect(b).toEqual(TEXT.generated_ids.data);
    expect(await collect(coord.stream(request(IMAGE)))).toEqual(IMAGE.generated_ids.data);
    const [head, tail] = coord.hops();
    // To the head a decoded token is its id (40-byte header, 12 bytes of positions, 4 bytes); its
    // result and every other hop carry hidden × 2 bytes plus the same 52.
    expect(head.decodeBytesPerToken).toBe(40 + 12 + 4);
    expect(head.decodeResultBytesPerToken).toBe(Hd * 2 + 52);
    expect(tail.decodeBytesPerToken).toBe(Hd * 2 + 52);
    expect(tail.decodeResultBytesPerToken).toBe(Hd * 2 + 52);
    await coord.close();
  });

  it('mesh-only: the head peer going silent during an image answer moves the head (prompt sent again, caches replayed), same tokens', async () => {
    const { coord, links, events } = await mesh(0, ['B', 'C', 'D'], { chunkSize: 16 });
    let silencedAt = 0;
    const tokens = await collect(coord.stream(request(IMAGE)), (n) => {
      if (n === 3) {
        silencedAt = performance.now();
        links.get('B')!.silence();
      }
    });
    expect(tokens).toEqual(IMAGE.generated_ids.data);
    const lost = events.find((e) => e.kind === 'peer-lost');
    expect(lost).toMatchObject({ peer: 'B' });
    expect(lost!.at - silencedAt).toBeLessThan(2000);
    // C keeps its layers (least movement); the spare D becomes the head.
    expect(coord.stages()).toEqual([
      { peer: 'D', range: [0, 2] },
      { peer: 'C', range: [2, 3] },
    ]);
    expect(await collect(coord.stream(request(TEXT)))).toEqual(TEXT.generated_ids.data);
    await coord.close();
  });

  it('sampling options act as on a single node: penalties, seeded top-k/top-p, stop strings', async () => {
    const m = opened!;
    const local = new LocalEngine({ modelId: 'realvocab', model: { ...m, tokenizer: m.tokenizer!, template: m.template! }, eosTokenIds: [], chunkSize: 32 });
    const { coord } = await mesh(0, ['B', 'C']);
    const text = async (events: AsyncIterable<GenerationEvent>) => {
      let t = '';
      let ids: number[] = [];
      let finish = '';
      for await (const ev of events) {
        if (ev.kind === 'delta') {
          t += ev.text;
          ids = ids.concat(ev.tokenIds);
        } else finish = ev.finishReason;
      }
      return { t, ids, finish };
    };
    const base = request(IMAGE, 12);
    const variants: GenerationRequest['sampling'][] = [
      { ...base.sampling, repetitionPenalty: 1.3, presencePenalty: 0.5, frequencyPenalty: 0.4 },
      { ...base.sampling, temperature: 0.9, topK: 40, topP: 0.9, seed: 1234 },
    ];
    const greedy = await text(local.stream(base));
    for (const sampling of variants) {
      const want = await text(local.stream({ ...base, sampling }));
      expect(want.ids).not.toEqual(greedy.ids); // the option changes the answer
      expect(await text(coord.stream({ ...base, sampling }))).toEqual(want);
    }
    // A stop string taken from the greedy answer ends both at the same place, unshown.
    const stop = greedy.t.slice(4, 7);
    expect(stop.length).toBe(3);
    const want = await text(local.stream({ ...base, sampling: { ...base.sampling, stop: [stop] } }));
    expect(want.finish).toBe('stop');
    expect(want.t).toBe(greedy.t.slice(0, greedy.t.indexOf(stop)));
    expect(await text(coord.stream({ ...base, sampling: { ...base.sampling, stop: [stop] } }))).toEqual(want);
    await coord.close();
    await local.close();
  });

  it('image prompts keep vision and DeepStack on the head and give the official tokens', async () => {
    const { coord } = await mesh(2, ['B', 'C']);
    expect(coord.stages()).toEqual([{ peer: 'B', range: [2, 3] }]);
    expect(await collect(coord.stream(request(IMAGE)))).toEqual(IMAGE.generated_ids.data);
    await coord.close();
    // A head that does not hold every DeepStack layer refuses image prompts rather than ship features.
    const small = await mesh(1, ['B', 'C']);
    await expect(collect(small.coord.stream(request(IMAGE)))).rejects.toThrow(MeshUnavailableError);
    expect(await collect(small.coord.stream(request(TEXT)))).toEqual(TEXT.generated_ids.data);
    await small.coord.close();
  });

  it('a silent peer is noticed within 2 s, its layers move and are rebuilt by replay, and the tokens do not change', async () => {
    const { coord, links, events } = await mesh(1, ['B', 'C', 'D'], { chunkSize: 16 });
    const before = coord.stages();
    const victim = before[before.length - 1].peer;
    let silencedAt = 0;
    const tokens = await collect(coord.stream(request(TEXT)), (n) => {
      if (n === 3) {
        silencedAt = performance.now();
        links.get(victim)!.silence();
      }
    });
    expect(tokens).toEqual(TEXT.generated_ids.data);
    const lost = events.find((e) => e.kind === 'peer-lost');
    const replanned = events.filter((e) => e.kind === 'replanned').at(-1);
    expect(lost).toMatchObject({ peer: victim });
    expect(lost!.at - silencedAt).toBeLessThan(2000);
    expect(replanned && replanned.kind === 'replanned' && replanned.replayedChunks).toBeGreaterThan(0);
    expect(coord.stages().some((s) => s.peer === victim)).toBe(false);
    expect(coord.stages().map((s) => s.range)).toEqual([
      [1, 2],
      [2, 3],
    ]);
    console.log(
      `mesh recovery: noticed ${(lost!.at - silencedAt).toFixed(0)} ms after the peer went silent, ` +
        `replanned + replayed in ${replanned!.kind === 'replanned' ? replanned!.ms.toFixed(0) : '?'} ms, total ${(replanned!.at - silencedAt).toFixed(0)} ms`,
    );
    await coord.close();
  });

  it('a stage that loses its neighbour absorbs its layers (KV rebuilt by replay)', async () => {
    const { coord, links, events } = await mesh(1, ['B', 'C'], { chunkSize: 16 });
    const tokens = await collect(coord.stream(request(TEXT)), (n) => {
      if (n === 2) links.get('C')!.silence();
    });
    expect(tokens).toEqual(TEXT.generated_ids.data);
    expect(coord.stages()).toEqual([{ peer: 'B', range: [1, 3] }]);
    expect(events.some((e) => e.kind === 'peer-lost' && e.peer === 'C')).toBe(true);
    await coord.close();
  });

  it('a stage runner keeps its inputs, dedupes a re-sent chunk, refuses a gap, and rebuilds a wider range by replay', async () => {
    const c = ctx!;
    const m = opened!;
    const chunk = (i: number, start: number, rows: number): TensorMessage => {
      const p = Int32Array.from({ length: rows }, (_, k) => start + k);
      const hidden = Float32Array.from({ length: rows * Hd }, (_, k) => Math.sin(0.37 * (k + 1) * (i + 1)));
      return { kind: 'forward', seq: 5, chunk: i, start, positions: [p, p, p], hidden, rows, cols: Hd, dtype: 'f32' };
    };
    const chunks = [chunk(0, 0, 6), chunk(1, 6, 5), chunk(2, 11, 1), chunk(3, 12, 1)];
    const narrow = new StageRunner(c, m.config, m.model.weights, [1, 2], { numBlocks: 8, blockSize: 4, keepInputs: true });
    const first = await narrow.forward(chunks[0]);
    expect(await narrow.forward(chunks[0])).toBe(first); // re-sent: the kept output, no second append
    expect(narrow.length(5)).toBe(6);
    await expect(narrow.forward(chunks[2])).rejects.toThrow(StageOrderError);
    await narrow.forward(chunks[1]);
    await narrow.forward(chunks[2]);
    expect(narrow.keptInputs(5)).toHaveLength(3);
    const wide = await narrow.rebuild([1, 3], m.model.weights);
    expect(wide.length(5)).toBe(12);
    const fresh = new StageRunner(c, m.config, m.model.weights, [1, 3], { numBlocks: 8, blockSize: 4 });
    for (const ch of chunks.slice(0, 3)) await fresh.forward(ch);
    expect(Array.from(await wide.forward(chunks[3]))).toEqual(Array.from(await fresh.forward(chunks[3])));
    wide.dispose();
    fresh.dispose();
  });

  it('when every peer is gone the coordinator runs their layers itself, and hands them back when a peer joins', async () => {
    const { coord, links, events, add } = await mesh(1, ['B', 'C'], { chunkSize: 16, localFallback: true });
    const tokens = await collect(coord.stream(request(TEXT)), (n) => {
      if (n === 3) for (const l of links.values()) l.silence();
    });
    expect(tokens).toEqual(TEXT.generated_ids.data);
    expect(events.filter((e) => e.kind === 'peer-lost').map((e) => e.kind === 'peer-lost' && e.peer).sort()).toEqual(['B', 'C']);
    expect(coord.stages()).toEqual([{ peer: 'local', range: [1, 3] }]);
    await add('D');
    expect(coord.stages()).toEqual([{ peer: 'D', range: [1, 3] }]);
    expect(coord.hops().map((h) => h.peer)).not.toContain('local');
    expect(await collect(coord.stream(request(TEXT)))).toEqual(TEXT.generated_ids.data);
    await coord.close();
  });

  const garbage: [string, (f: Uint8Array) => Uint8Array][] = [
    [
      'bad checksum',
      (f) => {
        f[f.length - 1] ^= 0x40;
        return f;
      },
    ],
    [
      'NaN',
      (f) => {
        const m = decodeMessage(f) as TensorMessage;
        const hidden = m.hidden.slice();
        hidden[3] = Number.NaN;
        return encodeMessage({ ...m, hidden });
      },
    ],
    [
      'wrong shape',
      (f) => {
        const m = decodeMessage(f) as TensorMessage;
        return encodeMessage({ ...m, cols: m.cols / 2, rows: m.rows * 2, positions: [0, 1, 2].map(() => new Int32Array(m.rows * 2)) as never });
      },
    ],
  ];
  for (const [name, corrupt] of garbage) {
    it(`a peer that sends garbage (${name}) is evicted and the request completes`, async () => {
      const { coord, links, events } = await mesh(1, ['B', 'C', 'D'], { chunkSize: 16 });
      const bad = coord.stages()[0].peer;
      let results = 0;
      links.get(bad)!.tamper((f) => {
        // Corrupt results from the fourth on (prefill and a few decode steps went through).
        if (f[5] !== 1 || ++results < 4) return f;
        return corrupt(f);
      });
      expect(await collect(coord.stream(request(TEXT)))).toEqual(TEXT.generated_ids.data);
      const lost = events.find((e) => e.kind === 'peer-lost');
      expect(lost).toMatchObject({ peer: bad });
      expect(lost!.kind === 'peer-lost' && lost!.reason).toMatch(/malformed|error from peer/);
      expect(coord.hops().find((h) => h.peer === bad)!.state).toBe('lost');
      await coord.close();
    });
  }
});
