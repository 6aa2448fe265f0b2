/**
 * The mesh as deployed, on loopback: the edge server (`startServer`) with the PeerJS signaling
 * server mounted on its port (mesh token = PeerJS key) and `GET /v1/mesh`, a coordinator holding the head, and two Node peers
 * that join with the token over WebRTC (node-datachannel bound to 127.0.0.1, no ICE servers) and
 * load only their assigned layers from their own copy of the checkpoint. Greedy tokens equal the
 * golden ones; a peer without the token is refused; a peer that leaves mid-generation has its
 * layers taken over (loaded and rebuilt by replay) and the tokens do not change.
 */
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { openModelDir } from '../../edge-node/io/model-dir.ts';
import { hostMesh } from '../../edge-node/mesh/host.ts';
import { joinMesh, MeshJoinError } from '../../edge-node/mesh/join.ts';
import { startServer } from '../../edge-node/server/http.ts';
import type { GenerationEvent } from '../../shared/engine/engine.ts';
import { MeshCoordinator, type MeshEvent } from '../../shared/mesh/coordinator.ts';
import { Qwen3VLModel } from '../../shared/model/qwen3-vl/model.ts';
import { testContext } from '../support/gpu.ts';

const golden = fileURLToPath(new URL('../fixtures/golden/', import.meta.url));
const modelDir = `${golden}realvocab`;
const ctx = await testContext();
const TEXT = JSON.parse(readFileSync(`${golden}e2e/case_system_prompt.json`, 'utf8')) as {
  messages: { role: string; content: string }[];
  generated_ids: { data: number[] };
};

async function until(cond: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe.skipIf(!ctx)('mesh over PeerJS + WebRTC (loopback)', async () => {
  const c = ctx!;
  const opened = ctx ? await openModelDir(c, modelDir, { dtype: 'f32' }) : null;
  const token = 'mesh-test-token';
  const events: MeshEvent[] = [];
  const coordinator = new MeshCoordinator({
    modelId: 'realvocab',
    model: { model: new Qwen3VLModel(c, opened!.config, opened!.model.weights, [0, 1]), config: opened!.config, tokenizer: opened!.tokenizer!, template: opened!.template!, imageProcessor: opened!.imageProcessor },
    eosTokenIds: [],
    chunkSize: 16,
    heartbeatMs: 100,
    peerTimeoutMs: 1500,
    onEvent: (e) => events.push(e),
  });
  // The edge server with the mesh mounted (signaling under /peerjs, stages in GET /v1/mesh).
  const server = await startServer({
    port: 0,
    doctor: () => Promise.reject(new Error('unused')),
    api: { engine: coordinator },
    mesh: { token, pipeline: coordinator },
    logSink: () => {},
  });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const host = await hostMesh({ coordinator, url, token, bindAddress: '127.0.0.1' });
  const joined: Awaited<ReturnType<typeof joinMesh>>[] = [];
  afterAll(async () => {
    for (const j of joined) j.close();
    host.close();
    await coordinator.close();
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
    opened?.release();
  });

  const run = async (onToken?: (n: number) => void) => {
    const tokens: number[] = [];
    const req = { id: 'x', messages: TEXT.messages, images: [], sampling: { maxTokens: 8, temperature: 0, topP: 1, topK: 0 } };
    for await (const ev of coordinator.stream(req) as AsyncIterable<GenerationEvent>) {
      if (ev.kind === 'delta') {
        tokens.push(...ev.tokenIds);
        onToken?.(tokens.length);
      }
    }
    return tokens;
  };

  it('refuses a peer without the mesh token', async () => {
    await expect(joinMesh({ coordinator: url, token: 'wrong', ctx: c, modelDir, dtype: 'f32', throughput: 10, bindAddress: '127.0.0.1', timeoutMs: 5000 })).rejects.toThrow(
      MeshJoinError,
    );
    expect(coordinator.hops()).toHaveLength(0);
  });

  it('two joined Node peers give the official tokens; GET /v1/mesh shows peers, ranges, latency and bytes', async () => {
    const t0 = performance.now();
    for (const id of ['node-a', 'node-b']) {
      joined.push(await joinMesh({ coordinator: url, token, ctx: c, modelDir, dtype: 'f32', throughput: 10, memoryBytes: 1e9, bindAddress: '127.0.0.1', peerId: id }));
    }
    await until(() => coordinator.stages().length === 2, 10_000);
    const joinMs = performance.now() - t0;
    expect(coordinator.stages()).toEqual([
      { peer: 'node-a', range: [1, 2] },
      { peer: 'node-b', range: [2, 3] },
    ]);
    expect(joined.map((j) => j.range())).toEqual([
      [1, 2],
      [2, 3],
    ]);
    expect(await run()).toEqual(TEXT.generated_ids.data);
    const body = (await (await fetch(`${url}/v1/mesh`)).json()) as {
      peers: { id: string; kind: string; range: number[] | null; state: string }[];
      hops: { peer: string; meanRttMs: number; bytesSent: number; decodeBytesPerToken: number }[];
    };
    expect(body.peers.map((p) => [p.id, p.kind, p.range, p.state])).toEqual([
      ['node-a', 'node', [1, 2], 'active'],
      ['node-b', 'node', [2, 3], 'active'],
    ]);
    for (const h of body.hops) {
      expect(h.meanRttMs).toBeGreaterThan(0);
      expect(h.bytesSent).toBeGreaterThan(0);
      expect(h.decodeBytesPerToken).toBe(opened!.config.text.hiddenSize * 2 + 52);
    }
    const forwardsBefore = coordinator.hops()[0].forwards;
    // The OpenAI API in front of the mesh engine answers with the same text.
    const chat = (await (
      await fetch(`${url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'realvocab', messages: TEXT.messages, max_tokens: 8, temperature: 0 }),
      })
    ).json()) as { choices: { message: { content: string } }[] };
    expect(chat.choices[0].message.content).toBe(opened!.tokenizer!.decode(TEXT.generated_ids.data, { skipSpecialTokens: true }));
    // It ran through the stages: one forward per prefill chunk and per decoded token after the first.
    expect(coordinator.hops()[0].forwards - forwardsBefore).toBe(forwardsBefore);
    console.log(`peerjs mesh: 2 peers joined in ${joinMs.toFixed(0)} ms; hops ${JSON.stringify(body.hops)}`);
  });

  it('a peer that leaves mid-generation is replaced and the tokens do not change', async () => {
    let leftAt = 0;
    const tokens = await run((n) => {
      if (n === 3) {
        leftAt = performance.now();
        joined[1].close();
      }
    });
    expect(tokens).toEqual(TEXT.generated_ids.data);
    expect(events.some((e) => e.kind === 'peer-lost' && e.peer === 'node-b')).toBe(true);
    expect(coordinator.stages()).toEqual([{ peer: 'node-a', range: [1, 3] }]);
    expect(joined[0].range()).toEqual([1, 3]);
    const re = events.filter((e) => e.kind === 'replanned').at(-1);
    console.log(`peerjs mesh: request finished ${(performance.now() - leftAt).toFixed(0)} ms after the peer left; replan+replay ${re?.kind === 'replanned' ? re.ms.toFixed(0) : '?'} ms`);
  });
});
