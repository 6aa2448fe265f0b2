/**
 * The mesh over real WebRTC data channels on loopback (`node-datachannel`, bound to 127.0.0.1,
 * no ICE servers): frames larger than a data-channel message arrive intact (the far end learns of a
 * close about 2 s later, through SCTP), a coordinator and its stage peers give the official greedy tokens, and a peer whose connection drops mid-generation
 * is replaced without changing them. Skipped when `node-datachannel` is not installed.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { openModelDir } from '../../edge-node/io/model-dir.ts';
import type { GenerationEvent } from '../../shared/engine/engine.ts';
import { MeshCoordinator, type MeshEvent } from '../../shared/mesh/coordinator.ts';
import { type DataChannelLike, dataChannelTransport } from '../../shared/mesh/datachannel.ts';
import { StagePeer } from '../../shared/mesh/stage.ts';
import { Qwen3VLModel } from '../../shared/model/qwen3-vl/model.ts';
import { testContext } from '../support/gpu.ts';

interface Pc {
  onicecandidate: ((e: { candidate: unknown }) => void) | null;
  ondatachannel: ((e: { channel: DataChannelLike }) => void) | null;
  createDataChannel(label: string): DataChannelLike;
  createOffer(): Promise<unknown>;
  createAnswer(): Promise<unknown>;
  setLocalDescription(d: unknown): Promise<void>;
  setRemoteDescription(d: unknown): Promise<void>;
  addIceCandidate(c: unknown): Promise<void>;
  close(): void;
}
interface Ndc {
  PeerConnection: new (id: string, o: { bindAddress: string; iceServers: string[] }) => unknown;
  cleanup(): void;
}
// Optional dependency: imported by name so the suite skips cleanly without it.
const NDC = 'node-datachannel';
const ndc = (await import(/* @vite-ignore */ NDC).then((m: { default: Ndc }) => m.default).catch(() => null)) as Ndc | null;
const polyfill = ndc
  ? ((await import(/* @vite-ignore */ `${NDC}/polyfill`)) as { RTCPeerConnection: new (o: { peerConnection: unknown }) => Pc })
  : null;

const golden = fileURLToPath(new URL('../fixtures/golden/', import.meta.url));
const ctx = ndc ? await testContext() : null;
const TEXT = JSON.parse(readFileSync(`${golden}e2e/case_system_prompt.json`, 'utf8')) as {
  messages: { role: string; content: string }[];
  generated_ids: { data: number[] };
};

let nextId = 0;
/** Two peer connections on loopback and an open data channel between them. */
async function connect(): Promise<{ a: DataChannelLike; b: DataChannelLike; close: () => void; openMs: number }> {
  const t0 = performance.now();
  const mk = () => new polyfill!.RTCPeerConnection({ peerConnection: new ndc!.PeerConnection(`pc${nextId++}`, { bindAddress: '127.0.0.1', iceServers: [] }) });
  const pa = mk();
  const pb = mk();
  pa.onicecandidate = (e) => void (e.candidate && pb.addIceCandidate(e.candidate));
  pb.onicecandidate = (e) => void (e.candidate && pa.addIceCandidate(e.candidate));
  const a = pa.createDataChannel('mesh');
  const gotB = new Promise<DataChannelLike>((r) => {
    pb.ondatachannel = (e) => r(e.channel);
  });
  const opened = new Promise((r) => a.addEventListener('open' as 'close', r));
  const offer = await pa.createOffer();
  await pa.setLocalDescription(offer);
  await pb.setRemoteDescription(offer);
  const answer = await pb.createAnswer();
  await pb.setLocalDescription(answer);
  await pa.setRemoteDescription(answer);
  await opened;
  const b = await gotB;
  return {
    a,
    b,
    openMs: performance.now() - t0,
    close: () => {
      pa.close();
      pb.close();
    },
  };
}

describe.skipIf(!ndc || !ctx)('mesh over WebRTC data channels (loopback)', async () => {
  const opened = ctx ? await openModelDir(ctx, `${golden}realvocab`, { dtype: 'f32' }) : null;
  const closers: (() => void)[] = [];
  afterAll(() => {
    for (const c of closers) c();
    opened?.release();
    setTimeout(() => ndc?.cleanup(), 50);
  });

  it('carries frames larger than a data-channel message, and reports a closed channel', async () => {
    const link = await connect();
    closers.push(link.close);
    const ta = dataChannelTransport(link.a, { maxPiece: 16 * 1024 });
    const tb = dataChannelTransport(link.b);
    const got: Uint8Array[] = [];
    const both = new Promise<void>((r) =>
      tb.onMessage((f) => {
        got.push(f);
        if (got.length === 3) r();
      }),
    );
    const big = Uint8Array.from({ length: 300 * 1024 + 7 }, (_, i) => (i * 31) & 0xff);
    ta.send(new Uint8Array([1, 2, 3]));
    ta.send(big);
    ta.send(new Uint8Array(0));
    await both;
    expect(Array.from(got[0])).toEqual([1, 2, 3]);
    expect(got[1].length).toBe(big.length);
    expect(got[1]).toEqual(big);
    expect(got[2].length).toBe(0);
    const closed = new Promise<string>((r) => tb.onClose(r));
    ta.close();
    expect(await closed).toMatch(/closed/);
  });

  it('a coordinator and three peers (two stages, one spare) give the official tokens; a dropped connection is replaced', async () => {
    const c = ctx!;
    const m = opened!;
    const events: MeshEvent[] = [];
    const coord = new MeshCoordinator({
      modelId: 'realvocab',
      model: { model: new Qwen3VLModel(c, m.config, m.model.weights, [0, 1]), config: m.config, tokenizer: m.tokenizer!, template: m.template!, imageProcessor: m.imageProcessor },
      eosTokenIds: [],
      chunkSize: 16,
      heartbeatMs: 100,
      peerTimeoutMs: 1000,
      onEvent: (e) => events.push(e),
    });
    const links = new Map<string, Awaited<ReturnType<typeof connect>>>();
    for (const id of ['B', 'C', 'D']) {
      const link = await connect();
      closers.push(link.close);
      links.set(id, link);
      new StagePeer(dataChannelTransport(link.b), { ctx: c, config: m.config, weightsFor: async () => m.model.weights, numBlocks: 64 });
      await coord.addPeer(id, dataChannelTransport(link.a), { memoryBytes: 100, throughput: 10 });
    }
    const request = { id: 'x', messages: TEXT.messages, images: [], sampling: { maxTokens: 8, temperature: 0, topP: 1, topK: 0 } };
    const run = async (onToken?: (n: number) => void) => {
      const tokens: number[] = [];
      for await (const ev of coord.stream(request) as AsyncIterable<GenerationEvent>) {
        if (ev.kind === 'delta') {
          tokens.push(...ev.tokenIds);
          onToken?.(tokens.length);
        }
      }
      return tokens;
    };
    expect(await run()).toEqual(TEXT.generated_ids.data);
    const victim = coord.stages()[0].peer;
    let droppedAt = 0;
    expect(
      await run((n) => {
        if (n === 3) {
          droppedAt = performance.now();
          links.get(victim)!.close();
        }
      }),
    ).toEqual(TEXT.generated_ids.data);
    expect(events.some((e) => e.kind === 'peer-lost' && e.peer === victim)).toBe(true);
    expect(coord.stages().some((s) => s.peer === victim)).toBe(false);
    const hops = coord.hops().filter((h) => h.forwards > 0);
    for (const h of hops) if (h.state === 'active') expect(h.decodeBytesPerToken).toBe(m.config.text.hiddenSize * 2 + 52);
    console.log(
      `webrtc mesh: channels opened in ${[...links.values()].map((l) => l.openMs.toFixed(0)).join('/')} ms; ` +
        `recovered ${(performance.now() - droppedAt).toFixed(0)} ms after the drop (request end); hops ${JSON.stringify(coord.hops())}`,
    );
    await coord.close();
  });
});
