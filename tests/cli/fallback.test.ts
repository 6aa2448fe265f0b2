/**
 * `vlmesh serve --fallback-url` with a second vlmesh as the upstream, through the official
 * `openai` client. Three processes, shared by every case:
 *
 *   upstream: serve --model realvocab                      (context 262 144)
 *   bare:     serve --fallback-url upstream                 (no model: everything goes upstream)
 *   edge:     serve --model realvocab --max-model-len 64 --fallback-url upstream
 *             (fits locally → local; over its context → upstream)
 *
 * Greedy answers through a front equal the upstream's own; `/metrics` counts them under
 * `path="fallback"`; the JSON log says `served_by`; with the upstream stopped, `/health` says so
 * and a chat with nothing local answers 503 `upstream_unavailable` (a local error still stands).
 * The other routes upstream (queue full, engine failures, another model) need an engine that
 * fails or queues on demand: tests/unit/fallback.test.ts drives them with a scripted one.
 */
import { fileURLToPath } from 'node:url';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parsePrometheus, sampleValue } from '../support/prometheus-parse.ts';
import { type Served, startServe, stopServe } from '../support/serve.ts';

const model = fileURLToPath(new URL('../fixtures/golden/realvocab', import.meta.url));
const MODEL = 'realvocab';
const EDGE_MAX_MODEL_LEN = 64;

type Message = OpenAI.ChatCompletionMessageParam;
const HELLO: Message[] = [{ role: 'user', content: 'Hello' }];
/** A conversation over 64 tokens (the edge's context), well within the upstream's. */
const LONG: Message[] = [
  { role: 'system', content: 'You are terse.' },
  { role: 'user', content: 'Tell me about the history of the lighthouse keepers along the northern coast in the winter months.' },
  { role: 'assistant', content: 'They kept the lamps lit through long storms, trimming wicks and hauling oil up the stairs every night.' },
  { role: 'user', content: 'And what did they eat when the supply boats could not reach the island for weeks?' },
];

/** The JSON request log lines a server wrote on stderr so far. */
const requestLog = (s: Served) =>
  s
    .stderr()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((l) => l.msg === 'request' && l.path === '/v1/chat/completions');

/** Waits (briefly: stderr is a pipe) for the log line of the request with this id. */
async function logLine(s: Served, requestId: string): Promise<Record<string, unknown>> {
  for (let i = 0; i < 100; i++) {
    const line = requestLog(s).find((l) => l.request_id === requestId);
    if (line) return line;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`no log line for ${requestId}`);
}

const metricsOf = async (s: Served) => parsePrometheus(await (await fetch(`${s.url}metrics`)).text());
const healthOf = async (s: Served) => (await fetch(`${s.url}health`)).json() as Promise<{ status: string; fallback?: { url: string; healthy: boolean; lastError: string | null } }>;

/** Text, finish reasons, usage and arrival times of a streamed answer. */
async function collect(stream: AsyncIterable<OpenAI.ChatCompletionChunk>) {
  let text = '';
  const finish: (string | null)[] = [];
  const contentAt: number[] = [];
  let usage: OpenAI.CompletionUsage | null | undefined;
  for await (const c of stream) {
    expect(c.object).toBe('chat.completion.chunk');
    for (const ch of c.choices) {
      if (ch.delta.content) contentAt.push(performance.now());
      text += ch.delta.content ?? '';
      finish.push(ch.finish_reason);
    }
    if (c.usage) usage = c.usage;
  }
  return { text, finish: finish.filter((f) => f !== null), usage, span: contentAt.length ? contentAt[contentAt.length - 1] - contentAt[0] : 0 };
}

describe('vlmesh serve --fallback-url: a second vlmesh as the upstream', () => {
  let upstream: Served | undefined;
  let bare: Served | undefined;
  let edge: Served | undefined;
  let direct: OpenAI;
  let viaBare: OpenAI;
  let viaEdge: OpenAI;

  beforeAll(async () => {
    upstream = await startServe(['--model', model, '--dtype', 'f32']);
    [bare, edge] = await Promise.all([
      startServe(['--fallback-url', upstream.url, '--fallback-probe-s', '0.5']),
      startServe([
        '--model', model, '--dtype', 'f32', '--max-model-len', String(EDGE_MAX_MODEL_LEN),
        '--fallback-url', `${upstream.url}v1/`, '--fallback-probe-s', '0.5',
      ]),
    ]);
    const client = (s: Served) => new OpenAI({ baseURL: `${s.url}v1`, apiKey: 'unused', maxRetries: 0 });
    direct = client(upstream);
    viaBare = client(bare);
    viaEdge = client(edge);
  }, 90_000);
  afterAll(async () => {
    await Promise.all([stopServe(bare?.p), stopServe(edge?.p), stopServe(upstream?.p)]);
  });

  it("starts without a model, lists the upstream's model and reports the upstream in /health", async () => {
    expect((await viaBare.models.list()).data.map((m) => m.id)).toEqual([MODEL]);
    const h = await healthOf(bare!);
    expect(h.status).toBe('ok');
    expect(h.fallback).toMatchObject({ url: `${upstream!.url}v1`, healthy: true });
    expect(sampleValue(await metricsOf(bare!), 'vlmesh:fallback_healthy')).toBe(1);
  });

  it('answers a greedy request through the upstream exactly as the upstream does (non-streaming)', async () => {
    const req = { model: MODEL, messages: HELLO, temperature: 0, max_tokens: 4 };
    const want = await direct.chat.completions.create(req);
    const { data: got, response } = await viaBare.chat.completions.create(req).withResponse();
    expect(got.object).toBe('chat.completion');
    expect(got.model).toBe(MODEL);
    expect(got.choices).toEqual(want.choices);
    expect(got.usage).toEqual(want.usage);
    // The front's request id travels upstream, so the completion id matches the front's.
    expect(got.id).toBe(`chatcmpl-${response.headers.get('x-request-id')}`);
    expect(await logLine(bare!, response.headers.get('x-request-id')!)).toMatchObject({
      status: 200,
      served_by: 'fallback',
      fallback_reason: 'no_model',
      model: MODEL,
      prompt_tokens: want.usage!.prompt_tokens,
      completion_tokens: 4,
    });
  });

  it('streams the same text, finish reason and usage as the upstream, chunk by chunk', async () => {
    const req = { model: MODEL, messages: HELLO, temperature: 0, max_tokens: 5, stream: true as const, stream_options: { include_usage: true } };
    const want = await collect(await direct.chat.completions.create(req));
    const got = await collect(await viaBare.chat.completions.create(req));
    expect(got.text).toBe(want.text);
    expect(got.text.length).toBeGreaterThan(0);
    expect(got.finish).toEqual(['length']);
    expect(got.usage).toEqual(want.usage);
    // Not buffered: the deltas reach the client spread over the generation, as they do directly.
    // (When decoding is too fast to tell, the scripted-upstream unit test covers this.)
    if (want.span > 100) expect(got.span).toBeGreaterThan(want.span * 0.25);
  });

  it('serves what fits locally and sends a prompt over the local context upstream', async () => {
    const fits = await viaEdge.chat.completions.create({ model: MODEL, messages: HELLO, temperature: 0, max_tokens: 2 }).withResponse();
    expect(await logLine(edge!, fits.response.headers.get('x-request-id')!)).toMatchObject({ status: 200, served_by: 'local' });
    expect(fits.data.choices[0].message.content).toBe(
      (await direct.chat.completions.create({ model: MODEL, messages: HELLO, temperature: 0, max_tokens: 2 })).choices[0].message.content,
    );

    const req = { model: MODEL, messages: LONG, temperature: 0, max_tokens: 3 };
    const want = await direct.chat.completions.create(req);
    expect(want.usage!.prompt_tokens + 3).toBeGreaterThan(EDGE_MAX_MODEL_LEN);
    const { data: got, response } = await viaEdge.chat.completions.create(req).withResponse();
    expect(got.choices).toEqual(want.choices);
    expect(got.usage).toEqual(want.usage);
    expect(await logLine(edge!, response.headers.get('x-request-id')!)).toMatchObject({
      status: 200,
      served_by: 'fallback',
      fallback_reason: 'context_length_exceeded',
    });
    // Client errors stay here.
    const bad = await fetch(`${edge!.url}v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"model":' });
    expect(bad.status).toBe(400);
    expect((await bad.json()).error.code).toBe('invalid_json');
    await expect(viaEdge.chat.completions.create({ model: MODEL, messages: HELLO, temperature: 7 })).rejects.toMatchObject({ status: 400 });
  });

  it('counts each path in /metrics', async () => {
    const f = await metricsOf(bare!);
    const fallbackOk = (reason: string) => sampleValue(f, 'vlmesh:request_success_total', { path: 'fallback', finished_reason: reason });
    expect(fallbackOk('length')).toBe(2);
    expect(sampleValue(f, 'vlmesh:e2e_request_latency_seconds_count', { path: 'fallback' })).toBe(2);
    // Token counts come from the upstream's usage (both answers carried it).
    expect(sampleValue(f, 'vlmesh:generation_tokens_total', { path: 'fallback' })).toBe(9);
    // A streamed answer says when its first token came.
    expect(sampleValue(f, 'vlmesh:time_to_first_token_seconds_count', { path: 'fallback' })).toBe(1);
    expect(f.get('vlmesh:request_success_total')!.samples.some((s) => s.labels.path === 'local')).toBe(false);

    const e = await metricsOf(edge!);
    const count = (path: string) =>
      e
        .get('vlmesh:request_success_total')!
        .samples.filter((s) => s.labels.path === path)
        .reduce((n, s) => n + s.value, 0);
    expect(count('fallback')).toBe(1);
    expect(count('local')).toBe(1);
    expect(sampleValue(e, 'vlmesh:fallback_healthy')).toBe(1);
  });

  it('marks a stopped upstream unhealthy; then a chat with nothing local answers 503, a local error stands', async () => {
    await stopServe(upstream?.p);
    // The probe (every 0.5 s) notices without any traffic.
    const deadline = Date.now() + 10_000;
    let h = await healthOf(bare!);
    while (h.fallback?.healthy !== false && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      h = await healthOf(bare!);
    }
    expect(h.fallback).toMatchObject({ healthy: false, lastError: expect.stringMatching(/ECONNREFUSED/) });
    expect(h.status).toBe('degraded');
    expect(sampleValue(await metricsOf(bare!), 'vlmesh:fallback_healthy')).toBe(0);

    const err = await viaBare.chat.completions.create({ model: MODEL, messages: HELLO, max_tokens: 2 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.APIError);
    const apiErr = err as InstanceType<typeof OpenAI.APIError>;
    expect(apiErr.status).toBe(503);
    expect(apiErr.code).toBe('upstream_unavailable');
    expect(apiErr.type).toBe('service_unavailable_error');
    expect(apiErr.message).toMatch(/fallback upstream is unavailable/);
    expect(sampleValue(await metricsOf(bare!), 'vlmesh:request_errors_total', { path: 'fallback', status: '503', code: 'upstream_unavailable' })).toBe(1);

    // The edge has a model: its own answer to an over-context prompt (400) stands, and it stays 'ok'.
    for (let i = 0; i < 100 && (await healthOf(edge!)).fallback?.healthy !== false; i++) await new Promise((r) => setTimeout(r, 100));
    const local = await viaEdge.chat.completions.create({ model: MODEL, messages: LONG, max_tokens: 3 }).catch((e: unknown) => e);
    expect(local).toMatchObject({ status: 400, code: 'context_length_exceeded' });
    expect((await healthOf(edge!)).status).toBe('ok');
    const fits = await viaEdge.chat.completions.create({ model: MODEL, messages: HELLO, temperature: 0, max_tokens: 1 });
    expect(fits.choices[0].finish_reason).toBe('length');
  });
});
