/**
 * The mesh from the command line, as a user runs it, on loopback:
 *
 *   plain:  vlmesh serve --model realvocab                       (the single-node reference)
 *   coord:  vlmesh serve --model realvocab --mesh-token T --mesh-only   (computes no layer)
 *   peers:  3 × vlmesh join --coordinator coord --token T --model realvocab
 *           (the head peer: embeddings, vision, the DeepStack layers [0, 2); then [2, 3); a spare)
 *
 * Greedy answers through the coordinator, text and image, equal the golden text and the single
 * node's; the head peer killed (SIGKILL) in the middle of a streamed image answer is noticed by
 * the heartbeats, the spare becomes the head (weights loaded, the prompt sent again, caches
 * rebuilt by replay), and the answer completes with the same text as an uninterrupted run;
 * `GET /v1/mesh` reports per-hop latency and bytes (a decoded token's frame is hidden × 2 bytes
 * plus the 40-byte header and 12 bytes of positions; to the head, its 4-byte id instead);
 * `/metrics` counts the mesh; a join with the wrong token is refused.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parsePrometheus, sampleValue } from '../support/prometheus-parse.ts';
import { type Served, startServe, stopServe } from '../support/serve.ts';

const bin = fileURLToPath(new URL('../../edge-node/bin/vlmesh.mjs', import.meta.url));
const golden = fileURLToPath(new URL('../fixtures/golden/', import.meta.url));
const model = `${golden}realvocab`;
const config = JSON.parse(readFileSync(`${model}/config.json`, 'utf8')) as { text_config: { hidden_size: number; num_hidden_layers: number } };
const HIDDEN = config.text_config.hidden_size;
const CASE = JSON.parse(readFileSync(`${golden}e2e/case_system_prompt.json`, 'utf8')) as {
  messages: unknown[];
  generated_ids: { data: number[] };
  generated_text_skip_special: string;
};
const IMAGE = JSON.parse(readFileSync(`${golden}e2e/case_one_image.json`, 'utf8')) as {
  messages: { role: string; content: { type: string; text?: string; image?: string }[] }[];
  generated_text_skip_special: string;
};
/** The image case as OpenAI messages (the PNG inline as a data: URL). */
const IMAGE_MESSAGES = IMAGE.messages.map((m) => ({
  role: m.role,
  content: m.content.map((p) =>
    p.type === 'image'
      ? { type: 'image_url', image_url: { url: `data:image/png;base64,${readFileSync(`${golden}e2e/${p.image}`).toString('base64')}` } }
      : { type: 'text', text: p.text },
  ),
}));
const TOKEN = 'mesh-cli-token';
/** Wire header (40 bytes) plus one token's MRoPE positions (3 × int32). */
const FRAME_OVERHEAD = 40 + 12;
/** A decoded token's frame to the head peer: header, positions, one u32 id. */
const HEAD_FRAME = FRAME_OVERHEAD + 4;

interface Joined {
  id: string;
  p: ChildProcess;
  stderr: () => string;
  exited: Promise<number | null>;
}

function join(coordinator: string, id: string, token = TOKEN): Joined {
  const p = spawn(process.execPath, [
    bin, 'join', '--coordinator', coordinator, '--token', token, '--model', model, '--dtype', 'f32',
    '--bind-address', '127.0.0.1', '--id', id, '--throughput', '10',
  ]);
  let err = '';
  p.stderr?.on('data', (d) => (err += d));
  p.stdout?.resume();
  const exited = new Promise<number | null>((r) => p.on('exit', (code) => r(code)));
  return { id, p, stderr: () => err, exited };
}

interface MeshBody {
  peers: { id: string; kind: string; range: [number, number] | null; state: string }[];
  hops: {
    peer: string;
    range: [number, number] | null;
    state: string;
    forwards: number;
    meanRttMs: number;
    bytesSent: number;
    bytesReceived: number;
    decodeBytesPerToken: number;
    decodeResultBytesPerToken: number;
    pingRttMs: number | null;
    bandwidthBytesPerS: number | null;
  }[];
}

const meshOf = async (s: Served) => (await (await fetch(`${s.url}v1/mesh`)).json()) as MeshBody;

async function until<T>(what: string, get: () => Promise<T>, ok: (v: T) => boolean, ms: number): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await get();
    if (ok(v)) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(v)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function chat(s: Served, maxTokens: number, messages: unknown[] = CASE.messages): Promise<string> {
  const res = await fetch(`${s.url}v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'tiny', messages, max_tokens: maxTokens, temperature: 0 }),
  });
  const body = (await res.json()) as { choices?: { message: { content: string } }[]; error?: unknown };
  expect(res.status, JSON.stringify(body)).toBe(200);
  return body.choices![0].message.content;
}

/** Streams a greedy answer; `onChunk(n)` after the n-th content chunk; returns the text and the longest gap between chunks. */
async function chatStream(
  s: Served,
  maxTokens: number,
  onChunk?: (n: number) => void,
  messages: unknown[] = CASE.messages,
): Promise<{ text: string; chunks: number; maxGapMs: number }> {
  const res = await fetch(`${s.url}v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'tiny', messages, max_tokens: maxTokens, temperature: 0, stream: true }),
  });
  expect(res.status).toBe(200);
  const decoder = new TextDecoder();
  let buf = '';
  let text = '';
  let chunks = 0;
  let last = 0;
  let maxGapMs = 0;
  for await (const part of res.body as unknown as AsyncIterable<Uint8Array>) {
    buf += decoder.decode(part, { stream: true });
    let i: number;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const event = buf.slice(0, i);
      buf = buf.slice(i + 2);
      const data = event.replace(/^data: /, '');
      if (data === '[DONE]') continue;
      const obj = JSON.parse(data) as { choices: { delta: { content?: string } }[]; error?: unknown };
      expect(obj.error).toBeUndefined();
      const piece = obj.choices[0]?.delta.content;
      if (piece === undefined) continue;
      const now = performance.now();
      if (last) maxGapMs = Math.max(maxGapMs, now - last);
      last = now;
      text += piece;
      chunks++;
      onChunk?.(chunks);
    }
  }
  return { text, chunks, maxGapMs };
}

describe('vlmesh serve --mesh-only with three vlmesh join peers', () => {
  let plain: Served | undefined;
  let coord: Served | undefined;
  const peers: Joined[] = [];
  let reference8 = '';
  let reference24 = '';
  let referenceImage8 = '';
  let referenceImage24 = '';

  beforeAll(async () => {
    plain = await startServe(['--model', model, '--dtype', 'f32', '--served-model-name', 'tiny']);
    reference8 = await chat(plain, 8);
    reference24 = await chat(plain, 24);
    referenceImage8 = await chat(plain, 8, IMAGE_MESSAGES);
    referenceImage24 = await chat(plain, 24, IMAGE_MESSAGES);
    // The plain node stays up: it is the cloud fallback of the last case.
    coord = await startServe(['--model', model, '--dtype', 'f32', '--mesh-token', TOKEN, '--mesh-only', '--served-model-name', 'tiny']);
  }, 120_000);

  afterAll(async () => {
    for (const j of peers) if (j.p.exitCode === null) j.p.kill('SIGTERM');
    await Promise.all(peers.map((j) => j.exited));
    await stopServe(plain?.p);
    await stopServe(coord?.p);
  });

  it('refuses a join with the wrong token', async () => {
    const bad = join(coord!.url, 'intruder', 'not-the-token');
    const code = await bad.exited;
    expect(code).not.toBe(0);
    expect(bad.stderr()).toMatch(/token was refused/);
    expect((await meshOf(coord!)).peers).toEqual([]);
  });

  it('answers 503 mesh_unavailable while no peer can run the layers (and no fallback is set)', async () => {
    const res = await fetch(`${coord!.url}v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'tiny', messages: CASE.messages, max_tokens: 4, temperature: 0 }),
    });
    expect(res.status).toBe(503);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('mesh_unavailable');
  });

  it('places the head (embeddings, vision, DeepStack layers) and the rest on 3 peers; text and image answers equal the golden / single-node text', async () => {
    const t0 = performance.now();
    for (const id of ['node-a', 'node-b', 'node-c']) peers.push(join(coord!.url, id));
    const body = await until(
      '3 peers, 2 placed stages',
      () => meshOf(coord!),
      (b) => b.peers.length === 3 && b.peers.filter((p) => p.range && p.state === 'active').length === 2,
      90_000,
    );
    console.log(`mesh-cli: 3 joins placed in ${(performance.now() - t0).toFixed(0)} ms (process start, GPU, weights, calibration skipped)`);
    // The first peer to say hello is the head and holds every layer that takes DeepStack features
    // (2 here); the next takes the last layer; the third waits as a spare.
    const active = body.peers.filter((p) => p.state === 'active').sort((a, b) => a.range![0] - b.range![0]);
    expect(active.map((p) => p.range)).toEqual([
      [0, 2],
      [2, 3],
    ]);
    expect(body.peers.filter((p) => p.state === 'idle').map((p) => p.range)).toEqual([null]);
    expect(body.peers.map((p) => p.id).sort()).toEqual(['node-a', 'node-b', 'node-c']);
    expect(body.peers.every((p) => p.kind === 'node')).toBe(true);
    expect(reference8).toBe(CASE.generated_text_skip_special);
    expect(await chat(coord!, 8)).toBe(reference8);
    expect(referenceImage8).toBe(IMAGE.generated_text_skip_special);
    expect(await chat(coord!, 8, IMAGE_MESSAGES)).toBe(referenceImage8);
  });

  it('reports per-hop latency and bytes; a decoded token costs hidden × 2 + header bytes a hop (a 4-byte id to the head)', async () => {
    const before = await meshOf(coord!);
    const streamed = await chatStream(coord!, 24);
    expect(streamed.text).toBe(reference24);
    const after = await meshOf(coord!);
    expect(after.hops).toHaveLength(3);
    const active = after.hops.filter((h) => h.state === 'active').sort((a, b) => a.range![0] - b.range![0]);
    expect(active).toHaveLength(2);
    for (const h of active) {
      const b = before.hops.find((x) => x.peer === h.peer)!;
      const head = h.range![0] === 0;
      expect(h.meanRttMs).toBeGreaterThan(0);
      expect(h.decodeBytesPerToken).toBe(head ? HEAD_FRAME : HIDDEN * 2 + FRAME_OVERHEAD);
      expect(h.decodeResultBytesPerToken).toBe(HIDDEN * 2 + FRAME_OVERHEAD);
      // One forward per prefill chunk plus one per decoded token after the first.
      expect(h.forwards - b.forwards).toBeGreaterThanOrEqual(23);
      expect(h.bytesSent - b.bytesSent).toBeGreaterThanOrEqual(23 * (head ? HEAD_FRAME : HIDDEN * 2 + FRAME_OVERHEAD));
      expect(h.bytesReceived - b.bytesReceived).toBeGreaterThanOrEqual(23 * (HIDDEN * 2 + FRAME_OVERHEAD));
    }
    // Every peer's link was measured when it joined: heartbeat round trip and probe bandwidth.
    for (const h of after.hops) {
      expect(h.pingRttMs).toBeGreaterThan(0);
      expect(h.pingRttMs).toBeLessThan(1000);
      expect(h.bandwidthBytesPerS).toBeGreaterThan(0);
    }
    console.log(
      `mesh-cli: hops ${active.map((h) => `${h.peer} [${h.range}] forward rtt ${h.meanRttMs.toFixed(2)} ms, ping ${h.pingRttMs?.toFixed(2)} ms, ${((h.bandwidthBytesPerS ?? 0) / 1e6).toFixed(1)} MB/s, ${h.decodeBytesPerToken} B/token out, ${h.decodeResultBytesPerToken} B/token back, ${h.forwards} forwards, ${h.bytesSent} B out / ${h.bytesReceived} B in`).join('; ')}`,
    );
  });

  it('the head peer killed mid-generation of an image answer: the spare takes over and the answer completes with the uninterrupted text', async () => {
    const before = await meshOf(coord!);
    const headId = before.peers.find((p) => p.range?.[0] === 0)!.id;
    const spareId = before.peers.find((p) => p.state === 'idle')!.id;
    const victim = peers.find((j) => j.id === headId)!;
    const survivors = peers.filter((j) => j !== victim).map((j) => j.id).sort();
    let killedAt = 0;
    const streamed = await chatStream(
      coord!,
      24,
      (n) => {
        if (n === 3) {
          killedAt = performance.now();
          victim.p.kill('SIGKILL');
        }
      },
      IMAGE_MESSAGES,
    );
    expect(killedAt).toBeGreaterThan(0);
    expect(streamed.text).toBe(referenceImage24);
    expect(streamed.chunks).toBeGreaterThan(3);
    const body = await meshOf(coord!);
    expect(body.peers.find((p) => p.id === victim.id)?.state).toBe('lost');
    const active = body.peers.filter((p) => p.state === 'active');
    expect(active.map((p) => p.id).sort()).toEqual(survivors);
    // The spare is the new head; the other survivor kept its layer.
    expect(body.peers.find((p) => p.id === spareId)?.range).toEqual([0, 2]);
    const covered = active.map((p) => p.range!).sort((a, b) => a[0] - b[0]);
    expect(covered.at(-1)![1]).toBe(config.text_config.num_hidden_layers);
    // The coordinator logs the loss (how long the peer had been silent) and the replan (weights + replay).
    const events = coord!
      .stderr()
      .split('\n')
      .filter((l) => l.startsWith('{"ts"') && l.includes('"msg":"mesh_'))
      .map((l) => JSON.parse(l) as { msg: string; peer?: string; silentMs?: number; ms?: number; replayedChunks?: number });
    const lost = events.find((e) => e.msg === 'mesh_peer_lost' && e.peer === victim.id);
    const replan = events.filter((e) => e.msg === 'mesh_replanned').at(-1);
    expect(lost?.silentMs).toBeGreaterThan(0);
    expect(replan?.replayedChunks).toBeGreaterThan(0);
    console.log(
      `mesh-cli: SIGKILL of the head ${victim.id}; detected after ${lost?.silentMs} ms of silence, replan (assign + weights + prompt + replay of ${replan?.replayedChunks} chunks) ${replan?.ms?.toFixed(0)} ms; longest stall between streamed tokens ${streamed.maxGapMs.toFixed(0)} ms`,
    );
    // Later requests run on the healed mesh.
    expect(await chat(coord!, 8)).toBe(reference8);
    expect(await chat(coord!, 8, IMAGE_MESSAGES)).toBe(referenceImage8);
  });

  it('counts mesh-served requests and hop traffic in /metrics', async () => {
    const m = parsePrometheus(await (await fetch(`${coord!.url}metrics`)).text());
    expect(sampleValue(m, 'vlmesh:request_success_total', { path: 'mesh', finished_reason: 'length' })).toBeGreaterThanOrEqual(6);
    expect(sampleValue(m, 'vlmesh:mesh_peers', { state: 'active' })).toBe(2);
    expect(sampleValue(m, 'vlmesh:mesh_peers', { state: 'lost' })).toBe(1);
    const hops = (await meshOf(coord!)).hops;
    for (const h of hops) {
      // Scraped first; heartbeats keep adding bytes.
      const sent = sampleValue(m, 'vlmesh:mesh_hop_bytes_total', { peer: h.peer, direction: 'sent' });
      expect(sent).toBeGreaterThan(0);
      expect(sent).toBeLessThanOrEqual(h.bytesSent);
      expect(sampleValue(m, 'vlmesh:mesh_hop_bytes_total', { peer: h.peer, direction: 'received' })).toBeGreaterThan(0);
      expect(sampleValue(m, 'vlmesh:mesh_hop_forwards_total', { peer: h.peer })).toBeGreaterThan(0);
      expect(sampleValue(m, 'vlmesh:mesh_hop_latency_seconds', { peer: h.peer })).toBeGreaterThan(0);
      expect(sampleValue(m, 'vlmesh:mesh_peer_ping_rtt_seconds', { peer: h.peer })).toBeGreaterThan(0);
      expect(sampleValue(m, 'vlmesh:mesh_peer_bandwidth_bytes_per_second', { peer: h.peer })).toBeGreaterThan(0);
      if (h.state !== 'lost') expect(sampleValue(m, 'vlmesh:mesh_hop_decode_bytes_per_token', { peer: h.peer })).toBe(h.range?.[0] === 0 ? HEAD_FRAME : HIDDEN * 2 + FRAME_OVERHEAD);
    }
  });

  it('with --fallback-url and no peer, the coordinator sends requests to the cloud fallback', async () => {
    const fb = await startServe(['--model', model, '--dtype', 'f32', '--mesh-token', TOKEN, '--mesh-only', '--served-model-name', 'tiny', '--fallback-url', plain!.url]);
    try {
      expect(await chat(fb, 8)).toBe(reference8);
      const streamed = await chatStream(fb, 24);
      expect(streamed.text).toBe(reference24);
      const m = parsePrometheus(await (await fetch(`${fb.url}metrics`)).text());
      expect(sampleValue(m, 'vlmesh:request_success_total', { path: 'fallback', finished_reason: 'length' })).toBe(2);
      expect(sampleValue(m, 'vlmesh:mesh_peers', { state: 'active' })).toBe(0);
      await new Promise((r) => setTimeout(r, 100));
      const lines = fb
        .stderr()
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, unknown>)
        .filter((l) => l.path === '/v1/chat/completions');
      expect(lines).toHaveLength(2);
      for (const l of lines) expect(l).toMatchObject({ status: 200, served_by: 'fallback', fallback_reason: 'mesh_unavailable' });
    } finally {
      await stopServe(fb.p);
    }
  });
});
