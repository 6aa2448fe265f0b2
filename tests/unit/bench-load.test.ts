/**
 * The load generator of `vlmesh bench serve` (edge-node/bench/load.ts): percentiles (linear
 * interpolation between closest ranks, numpy's default) against hand-computed values, the SSE
 * parser fed in pieces cut everywhere, report aggregation from synthetic records, URL checks,
 * and `runLoad` end to end against a small scripted SSE server on loopback (counts, usage vs
 * chunk counting, errors by status, multi-turn history and session ids, the deadline).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import {
  BenchServerError,
  BenchUrlError,
  buildReport,
  formatLoadReport,
  isLoopbackHost,
  listModels,
  normalizeServerUrl,
  percentile,
  type RequestRecord,
  runLoad,
  SseParser,
  sseData,
  summarize,
} from '../../edge-node/bench/load.ts';

describe('percentile (linear interpolation between closest ranks)', () => {
  it('matches hand-computed values', () => {
    // rank = p/100 · (n − 1)
    expect(percentile([1, 2, 3, 4], 50)).toBe(2.5); // rank 1.5
    expect(percentile([10, 20, 30, 40, 50], 50)).toBe(30); // rank 2
    expect(percentile([10, 20, 30, 40, 50], 90)).toBeCloseTo(46, 12); // rank 3.6: 40 + 0.6·10
    expect(percentile([10, 20, 30, 40, 50], 99)).toBeCloseTo(49.6, 12); // rank 3.96
    expect(percentile([10, 20, 30, 40, 50], 0)).toBe(10);
    expect(percentile([10, 20, 30, 40, 50], 100)).toBe(50);
    expect(percentile([7], 99)).toBe(7);
    // 1..100: rank 0.99·99 = 98.01 → 99 + 0.01·1
    const hundred = Array.from({ length: 100 }, (_, i) => i + 1);
    expect(percentile(hundred, 99)).toBeCloseTo(99.01, 12);
    expect(percentile(hundred, 90)).toBeCloseTo(90.1, 12);
  });

  it('refuses no values and p outside 0..100', () => {
    expect(() => percentile([], 50)).toThrow(RangeError);
    expect(() => percentile([1], 101)).toThrow(RangeError);
    expect(() => percentile([1], -1)).toThrow(RangeError);
    expect(() => percentile([1], Number.NaN)).toThrow(RangeError);
  });

  it('summarize sorts first and gives the mean', () => {
    const s = summarize([5, 1, 4, 2, 3])!;
    expect(s.mean).toBe(3);
    expect(s.p50).toBe(3);
    expect(s.p90).toBeCloseTo(4.6, 12);
    expect(s.p99).toBeCloseTo(4.96, 12);
    expect(summarize([])).toBeNull();
  });
});

describe('SseParser', () => {
  const stream =
    ': comment line\n' +
    'data: {"a":1}\n\n' +
    'event: message\r\ndata: {"b":\r\ndata: 2}\r\n\r\n' +
    'id: 7\rdata:no-space\r\r' +
    'data: {"c":"é ✓"}\n\n' +
    'data: [DONE]\n\n';
  const expected = ['{"a":1}', '{"b":\n2}', 'no-space', '{"c":"é ✓"}', '[DONE]'];

  it('parses a whole stream', () => {
    const p = new SseParser();
    expect([...p.push(stream), ...p.end()]).toEqual(expected);
  });

  it('gives the same events whatever the cut, including between \\r and \\n', () => {
    for (let i = 0; i <= stream.length; i++) {
      for (const j of [i, Math.min(stream.length, i + 1), Math.min(stream.length, i + 7)]) {
        const p = new SseParser();
        const out = [...p.push(stream.slice(0, i)), ...p.push(stream.slice(i, j)), ...p.push(stream.slice(j)), ...p.end()];
        expect(out, `cut at ${i}, ${j}`).toEqual(expected);
      }
    }
    // One character at a time.
    const p = new SseParser();
    const out: string[] = [];
    for (const ch of stream) out.push(...p.push(ch));
    expect([...out, ...p.end()]).toEqual(expected);
  });

  it('drops an event the stream does not close with a blank line', () => {
    const p = new SseParser();
    expect(p.push('data: one\n\ndata: cut')).toEqual(['one']);
    expect(p.end()).toEqual([]);
  });

  it('sseData decodes UTF-8 split inside a character', async () => {
    const bytes = new TextEncoder().encode(stream);
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        for (let i = 0; i < bytes.length; i += 3) c.enqueue(bytes.subarray(i, i + 3));
        c.close();
      },
    });
    const out: string[] = [];
    for await (const d of sseData(body)) out.push(d);
    expect(out).toEqual(expected);
  });
});

describe('buildReport', () => {
  const rec = (over: Partial<RequestRecord>): RequestRecord => ({
    conversation: 0,
    turn: 0,
    outcome: 'ok',
    startMs: 0,
    ttftMs: 100,
    itlMs: [],
    e2eMs: 400,
    outputTokens: 4,
    promptTokens: 20,
    usageReported: true,
    text: '',
    ...over,
  });
  const meta = { url: 'http://127.0.0.1:1', model: 'm', requests: 6, concurrency: 2, maxTokens: 4, durationMs: 2000, turns: 2, stoppedEarly: false };

  it('aggregates counts, throughput, latencies and per-turn TTFT', () => {
    const records = [
      rec({ conversation: 0, turn: 0, ttftMs: 100, itlMs: [10, 20, 30], e2eMs: 160 }),
      rec({ conversation: 0, turn: 1, ttftMs: 40, itlMs: [10, 10, 10], e2eMs: 70, promptTokens: 40 }),
      rec({ conversation: 1, turn: 0, ttftMs: 300, itlMs: [50, 50, 50], e2eMs: 450 }),
      rec({ conversation: 1, turn: 1, outcome: 'failed', errorKey: '429', errorMessage: 'queue full', ttftMs: null, e2eMs: 5, outputTokens: 0 }),
      rec({ conversation: 2, turn: 0, outcome: 'failed', errorKey: '429', errorMessage: 'again', ttftMs: null, e2eMs: 3, outputTokens: 0 }),
    ];
    const r = buildReport(records, meta);
    expect(r).toMatchObject({ completed: 3, failed: 2, aborted: 0, not_sent: 1, errors: { '429': 2 }, error_messages: { '429': 'queue full' } });
    expect(r.duration_s).toBe(2);
    expect(r.request_throughput).toBe(1.5); // 3 completed / 2 s
    expect(r.output_tokens).toBe(12);
    expect(r.input_tokens).toBe(80);
    expect(r.output_throughput_tok_s).toBe(6);
    // TTFT over completed: [40, 100, 300] → mean 146.667, p50 100, p90 rank 1.8 → 100 + 0.8·200 = 260
    expect(r.ttft_ms).toEqual({ mean: 146.667, p50: 100, p90: 260, p99: 296 });
    // ITL pooled: [10,10,10,10,20,30,50,50,50] → mean 240/9, p50 = 20, p90 rank 7.2 → 50
    expect(r.itl_ms).toEqual({ mean: 26.667, p50: 20, p90: 50, p99: 50 });
    // TPOT: (160−100)/3 = 20, (70−40)/3 = 10, (450−300)/3 = 50
    expect(r.tpot_ms).toEqual({ mean: 26.667, p50: 20, p90: 44, p99: 49.4 });
    expect(r.e2e_ms?.p50).toBe(160);
    // per request tok/s: 4/0.16 = 25, 4/0.07 = 57.143, 4/0.45 = 8.889
    expect(r.per_request_output_tok_s?.p50).toBe(25);
    expect(r.turns).toHaveLength(2);
    expect(r.turns![0]).toMatchObject({ turn: 1, completed: 2, prompt_tokens_mean: 20, ttft_ms: { mean: 200, p50: 200 } });
    expect(r.turns![1]).toMatchObject({ turn: 2, completed: 1, prompt_tokens_mean: 40, ttft_ms: { mean: 40, p50: 40, p90: 40, p99: 40 } });
    const text = formatLoadReport(r);
    expect(text).toContain('3 completed, 2 failed, 1 not sent');
    expect(text).toMatch(/turn 2 TTFT \(ms\)\s+40\.00/);
    expect(text).toMatch(/429\s+2\s+queue full/);
  });

  it('reports nothing completed without dividing by zero', () => {
    const r = buildReport([rec({ outcome: 'aborted', ttftMs: 50 })], { ...meta, requests: 3, turns: 1, durationMs: 0, stoppedEarly: true });
    expect(r).toMatchObject({ completed: 0, failed: 0, aborted: 1, not_sent: 2, stopped_early: true, request_throughput: 0, output_tokens: 0 });
    expect(r.ttft_ms).toBeNull();
    expect(r.turns).toBeUndefined();
    expect(formatLoadReport(r)).toContain('stopped early');
  });

  it('leaves TPOT out for one-token answers', () => {
    const r = buildReport([rec({ outputTokens: 1 })], { ...meta, turns: 1 });
    expect(r.tpot_ms).toBeNull();
    expect(r.ttft_ms?.p50).toBe(100);
  });
});

describe('server URLs', () => {
  it('knows loopback hosts', () => {
    for (const h of ['127.0.0.1', '127.1.2.3', 'localhost', 'LOCALHOST', '[::1]', '::1', '[::ffff:7f00:1]', 'app.localhost']) expect(isLoopbackHost(h), h).toBe(true);
    for (const h of ['10.0.0.1', '0.0.0.0', '192.168.1.1', 'example.com', '[::]', '[fe80::1]', '128.0.0.1', 'localhost.example.com']) expect(isLoopbackHost(h), h).toBe(false);
  });

  it('normalizes the base URL and refuses remote hosts unless allowed', () => {
    expect(normalizeServerUrl('http://127.0.0.1:8080')).toBe('http://127.0.0.1:8080');
    expect(normalizeServerUrl('http://127.0.0.1:8080/v1/')).toBe('http://127.0.0.1:8080');
    expect(normalizeServerUrl('http://localhost:8000/proxy/v1?x=1')).toBe('http://localhost:8000/proxy');
    expect(normalizeServerUrl('http://[::ffff:127.0.0.1]:80')).toBe('http://[::ffff:7f00:1]');
    expect(() => normalizeServerUrl('http://10.1.2.3:8080')).toThrow(/not a loopback address.*--allow-remote/);
    expect(() => normalizeServerUrl('https://api.example.com/v1')).toThrow(BenchUrlError);
    expect(normalizeServerUrl('https://api.example.com/v1', true)).toBe('https://api.example.com');
    expect(() => normalizeServerUrl('ftp://127.0.0.1/')).toThrow(/http/);
    expect(() => normalizeServerUrl('127.0.0.1:8080')).toThrow(BenchUrlError);
  });
});

// ---------------------------------------------------------------------------------------------
// runLoad against a scripted OpenAI-style SSE server on loopback
// ---------------------------------------------------------------------------------------------

interface Seen {
  body: { model: string; messages: { role: string; content: unknown }[]; max_tokens: number; session_id?: string; stream_options?: unknown; stream?: boolean };
  auth: string | undefined;
}
type Handler = (seen: Seen, res: ServerResponse, index: number) => Promise<void> | void;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
let server: Server | undefined;
afterEach(async () => {
  const s = server;
  server = undefined;
  if (!s) return;
  s.closeAllConnections();
  await new Promise((r) => s.close(r));
});

/** Starts the scripted server; returns its base URL, what it saw, and the most requests it held at once. */
async function scripted(handler: Handler): Promise<{ url: string; seen: Seen[]; maxInFlight: () => number }> {
  const seen: Seen[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  server = createServer(async (req: IncomingMessage, res: ServerResponse) => {
    if (req.url === '/v1/models') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ object: 'list', data: [{ id: 'stub-model', object: 'model' }, { id: 'other' }] }));
      return;
    }
    let raw = '';
    for await (const c of req) raw += c;
    const s: Seen = { body: JSON.parse(raw), auth: req.headers.authorization };
    seen.push(s);
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    try {
      await handler(s, res, seen.length - 1);
    } finally {
      inFlight--;
    }
  });
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen, maxInFlight: () => maxInFlight };
}

const chunk = (delta: Record<string, unknown>, usage?: Record<string, number>) =>
  `data: ${JSON.stringify({ object: 'chat.completion.chunk', choices: usage ? [] : [{ index: 0, delta }], ...(usage ? { usage } : {}) })}\n\n`;

/** Streams `pieces` with `gapMs` between them (first after `firstMs`), each written in two halves. */
async function streamAnswer(res: ServerResponse, pieces: string[], o: { firstMs?: number; gapMs?: number; usage?: Record<string, number> | null } = {}) {
  res.writeHead(200, { 'content-type': 'text/event-stream' });
  res.write(chunk({ role: 'assistant', content: '' }));
  await sleep(o.firstMs ?? 0);
  for (const [i, p] of pieces.entries()) {
    if (i > 0) await sleep(o.gapMs ?? 0);
    const text = chunk({ content: p });
    const cut = Math.floor(text.length / 2);
    res.write(text.slice(0, cut));
    res.write(text.slice(cut));
  }
  if (o.usage !== null) res.write(chunk({}, o.usage ?? { prompt_tokens: 10, completion_tokens: pieces.length, total_tokens: 10 + pieces.length }));
  res.end('data: [DONE]\n\n');
}

describe('runLoad', () => {
  it('sends N streamed requests at concurrency C and measures TTFT and ITL', async () => {
    const s = await scripted((_seen, res) => streamAnswer(res, ['a', 'b', 'c', 'd'], { firstMs: 60, gapMs: 25, usage: { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15 } }));
    const progress: number[] = [];
    const r = await runLoad({ url: s.url, model: 'stub-model', apiKey: 'k1', requests: 6, concurrency: 3, maxTokens: 5, onProgress: (p) => progress.push(p.done) });
    expect(r).toMatchObject({ requests: 6, concurrency: 3, completed: 6, failed: 0, aborted: 0, not_sent: 0, errors: {}, stopped_early: false, usage_reported: true });
    expect(progress).toEqual([1, 2, 3, 4, 5, 6]);
    expect(s.maxInFlight()).toBe(3);
    // The usage chunk's count wins over the 4 text chunks.
    expect(r.output_tokens).toBe(30);
    expect(r.input_tokens).toBe(60);
    expect(r.ttft_ms!.p50).toBeGreaterThanOrEqual(55);
    expect(r.itl_ms!.p50).toBeGreaterThanOrEqual(20);
    expect(r.itl_ms!.p50).toBeLessThan(60);
    expect(r.e2e_ms!.p50).toBeGreaterThanOrEqual(r.ttft_ms!.p50);
    for (const k of ['ttft_ms', 'itl_ms', 'e2e_ms', 'tpot_ms'] as const) {
      expect(r[k]!.p50).toBeLessThanOrEqual(r[k]!.p90);
      expect(r[k]!.p90).toBeLessThanOrEqual(r[k]!.p99);
    }
    expect(r.duration_s).toBeGreaterThan(0.1);
    expect(Math.abs(r.request_throughput - 6 / r.duration_s)).toBeLessThan(0.01 * r.request_throughput);
    for (const x of s.seen) {
      expect(x.body).toMatchObject({ model: 'stub-model', max_tokens: 5, stream: true, stream_options: { include_usage: true }, temperature: 0 });
      expect(x.body.session_id).toBeUndefined();
      expect(x.auth).toBe('Bearer k1');
    }
    // Each conversation's prompt is tagged, so they share no prefix.
    expect(new Set(s.seen.map((x) => x.body.messages[0].content)).size).toBe(6);
  });

  it('counts text chunks when the server sends no usage', async () => {
    const s = await scripted((_, res) => streamAnswer(res, ['x', 'y', 'z'], { usage: null }));
    const r = await runLoad({ url: s.url, model: 'stub-model', requests: 2, concurrency: 2 });
    expect(r).toMatchObject({ completed: 2, output_tokens: 6, input_tokens: 0, usage_reported: false });
  });

  it('counts failures by status and kind', async () => {
    const s = await scripted(async (_, res, i) => {
      if (i % 4 === 0) {
        res.writeHead(429, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: { message: 'the queue is full', type: 'rate_limit_error', code: 'queue_full' } }));
      } else if (i % 4 === 1) {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.end(`${chunk({ content: 'a' })}data: {"error":{"message":"device lost","code":"internal_error"}}\n\ndata: [DONE]\n\n`);
      } else if (i % 4 === 2) {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.end(chunk({ content: 'a' })); // no [DONE]
      } else await streamAnswer(res, ['ok']);
    });
    const r = await runLoad({ url: s.url, model: 'stub-model', requests: 8, concurrency: 1 });
    expect(r).toMatchObject({ completed: 2, failed: 6, errors: { '429': 2, stream_error: 2, incomplete: 2 } });
    expect(r.error_messages['429']).toBe('the queue is full');
    expect(r.error_messages.stream_error).toBe('device lost (internal_error)');
    expect(r.output_tokens).toBe(2);
  });

  it('continues each conversation for K turns with the previous answers and one session id', async () => {
    const s = await scripted((seen, res) => streamAnswer(res, [`answer${seen.body.messages.length}`, '!']));
    const r = await runLoad({ url: s.url, model: 'stub-model', requests: 7, concurrency: 2, turns: 3, session: true, prompt: 'Hello' });
    expect(r).toMatchObject({ completed: 7, failed: 0, not_sent: 0 });
    expect(r.turns!.map((t) => [t.turn, t.completed])).toEqual([
      [1, 3],
      [2, 2],
      [3, 2],
    ]);
    const bySession = new Map<string, Seen[]>();
    for (const x of s.seen) bySession.set(x.body.session_id!, [...(bySession.get(x.body.session_id!) ?? []), x]);
    // 3 conversations: two of 3 turns, the last cut to 1 by the request count.
    expect([...bySession.values()].map((v) => v.length).sort()).toEqual([1, 3, 3]);
    for (const turns of bySession.values()) {
      turns.forEach((x, t) => {
        expect(x.body.messages).toHaveLength(2 * t + 1);
        expect(x.body.messages.map((m) => m.role)).toEqual(Array.from({ length: 2 * t + 1 }, (_, k) => (k % 2 ? 'assistant' : 'user')));
        for (let k = 1; k < 2 * t + 1; k += 2) expect(x.body.messages[k].content).toBe(`answer${k}!`);
        expect(x.body.messages.at(-1)!.content).toMatch(/Hello$/);
      });
    }
  });

  it('ends a conversation at a failed turn', async () => {
    const s = await scripted(async (seen, res) => {
      if (seen.body.messages.length > 1) {
        res.writeHead(500, { 'content-type': 'application/json' });
        res.end('{"error":{"message":"boom"}}');
      } else await streamAnswer(res, ['a']);
    });
    const r = await runLoad({ url: s.url, model: 'stub-model', requests: 6, concurrency: 2, turns: 3 });
    expect(r).toMatchObject({ completed: 2, failed: 2, not_sent: 2, errors: { '500': 2 } });
  });

  it('stops at the deadline: aborts what is in flight, sends nothing more, reports what finished', async () => {
    const s = await scripted(async (_, res, i) => {
      if (i < 2) return streamAnswer(res, ['quick']);
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(chunk({ content: 'slow' }));
      // Never ends: only the client's abort closes it.
    });
    const t = performance.now();
    const r = await runLoad({ url: s.url, model: 'stub-model', requests: 10, concurrency: 2, timeoutMs: 400 });
    expect(performance.now() - t).toBeLessThan(3000);
    expect(r).toMatchObject({ completed: 2, failed: 0, aborted: 2, not_sent: 6, stopped_early: true });
    expect(s.seen).toHaveLength(4);
  });

  it('stops on an outside abort signal too', async () => {
    const s = await scripted((_, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(chunk({ content: 'slow' }));
    });
    const stop = new AbortController();
    setTimeout(() => stop.abort(), 200);
    const r = await runLoad({ url: s.url, model: 'stub-model', requests: 3, concurrency: 1, signal: stop.signal });
    expect(r).toMatchObject({ completed: 0, aborted: 1, not_sent: 2, stopped_early: true });
  });

  it('listModels is the preflight: the list, or a clear error', async () => {
    const s = await scripted(() => {});
    expect(await listModels(s.url)).toEqual(['stub-model', 'other']);
    server!.closeAllConnections();
    await new Promise((r) => server!.close(r));
    server = undefined;
    await expect(listModels(s.url)).rejects.toThrow(BenchServerError);
    await expect(listModels(s.url)).rejects.toThrow(/cannot reach the server at .*\/v1\/models \(ECONNREFUSED/);
  });
});
