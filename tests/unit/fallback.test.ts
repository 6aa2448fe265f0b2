/**
 * The cloud fallback's parts that need no model: `--fallback-url` normalisation, which local
 * outcomes may go upstream, and `UpstreamFallback` against a scripted upstream on loopback — the
 * body and headers it forwards, SSE piped event by event (the test holds the upstream mid-stream
 * and reads the first event through the proxy), a client hang-up aborting the upstream request,
 * error answers passed through, and health: probes, refused connections, gateway errors, timeouts.
 * Then the routing in openai-api.ts over a scripted `Engine`: which local outcomes go upstream
 * (engine failures before the first byte, queue full, over the context, another model) and which
 * never do (client errors), what stands when the upstream is down, `/v1/models` and `/metrics`.
 */
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { DoctorReport } from '../../edge-node/cli/doctor.ts';
import { startServer } from '../../edge-node/server/http.ts';
import type { OpenAiApiOptions } from '../../edge-node/server/openai-api.ts';
import { parseChatRequest } from '../../shared/api/chat-completions.ts';
import { ApiError, ApiErrorType } from '../../shared/api/errors.ts';
import type { Engine, EngineStats, GenerationEvent } from '../../shared/engine/engine.ts';
import { VlmeshError } from '../../shared/errors.ts';
import {
  FallbackUrlError,
  type ForwardOutcome,
  fallbackReasonFor,
  isMaxTokensError,
  normalizeFallbackUrl,
  UpstreamFallback,
  type UpstreamResult,
} from '../../edge-node/server/fallback.ts';
import { parsePrometheus, sampleValue } from '../support/prometheus-parse.ts';

describe('normalizeFallbackUrl', () => {
  it('accepts the origin or the base URL, with or without /v1 and trailing slashes', () => {
    expect(normalizeFallbackUrl('http://gpu:8000').href).toBe('http://gpu:8000/v1');
    expect(normalizeFallbackUrl('http://gpu:8000/').href).toBe('http://gpu:8000/v1');
    expect(normalizeFallbackUrl('http://gpu:8000/v1').href).toBe('http://gpu:8000/v1');
    expect(normalizeFallbackUrl(' https://x.io/v1/ ').href).toBe('https://x.io/v1');
    expect(normalizeFallbackUrl('https://x.io/vllm').href).toBe('https://x.io/vllm/v1');
    expect(normalizeFallbackUrl('https://x.io/vllm/v1//').href).toBe('https://x.io/vllm/v1');
    expect(normalizeFallbackUrl('https://x.io/api/v1beta').href).toBe('https://x.io/api/v1beta');
  });

  it('refuses what is not an http(s) URL, credentials, queries and fragments, naming the problem', () => {
    const bad: [string, RegExp][] = [
      ['gpu:8000', /must be an http: or https: URL/],
      ['not a url', /is not a URL/],
      ['ftp://gpu/v1', /uses ftp:/],
      ['http://user:secret@gpu:8000', /--fallback-api-key/],
      ['http://gpu:8000/v1?key=1', /no query string or fragment/],
      ['http://gpu:8000/v1#x', /no query string or fragment/],
    ];
    for (const [url, message] of bad) {
      expect(() => normalizeFallbackUrl(url), url).toThrow(FallbackUrlError);
      expect(() => normalizeFallbackUrl(url), url).toThrow(message);
    }
    // The message never echoes a password.
    expect(() => normalizeFallbackUrl('http://user:secret@gpu:8000')).not.toThrow(/secret/);
  });
});

describe('which local outcomes go upstream', () => {
  const err = (status: number, code: string) => new ApiError(status, status >= 500 ? ApiErrorType.Server : ApiErrorType.InvalidRequest, code, code);

  it('over the local context, queue full and engine failures do; client errors do not', () => {
    expect(fallbackReasonFor(err(400, 'context_length_exceeded'))).toBe('context_length_exceeded');
    expect(fallbackReasonFor(err(429, 'queue_full'))).toBe('queue_full');
    expect(fallbackReasonFor(err(500, 'internal_error'))).toBe('engine_error');
    expect(fallbackReasonFor(err(503, 'model_not_loaded'))).toBe('engine_error');
    for (const [status, code] of [
      [400, 'invalid_json'],
      [400, 'invalid_value'],
      [400, 'invalid_image'],
      [401, 'invalid_api_key'],
      [404, 'model_not_found'],
      [413, 'request_too_large'],
      [429, 'rate_limited'],
    ] as const) {
      expect(fallbackReasonFor(err(status, code)), code).toBeNull();
    }
  });

  it('recognises validation errors on max_tokens (the caller re-validates without the local bound)', () => {
    const opts = { defaultMaxTokens: 16, maxTokensLimit: 64 };
    const messages = [{ role: 'user', content: 'hi' }];
    const thrown = (body: unknown): unknown => {
      try {
        parseChatRequest(body, opts);
      } catch (e) {
        return e;
      }
      return null;
    };
    expect(isMaxTokensError(thrown({ model: 'm', messages, max_tokens: 65 }))).toBe(true);
    expect(isMaxTokensError(thrown({ model: 'm', messages, max_completion_tokens: 1000 }))).toBe(true);
    expect(isMaxTokensError(thrown({ model: 'm', messages, temperature: 9 }))).toBe(false);
    expect(isMaxTokensError(thrown({ model: 'm', messages: [], max_tokens: 65 }))).toBe(false);
    expect(isMaxTokensError(new Error('max_tokens must be <= 3'))).toBe(false);
  });
});

/** A scripted upstream: each test sets `handler`; requests (with their bodies) are recorded. */
interface Recorded {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
  /** Settles when the upstream's side of the connection closes. */
  closed: Promise<void>;
}

const listen = async (server: Server): Promise<string> => {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
};

const sse = (obj: unknown) => `data: ${JSON.stringify(obj)}\n\n`;
const chunk = (content: string | null, finish: string | null = null) => ({
  id: 'chatcmpl-up',
  object: 'chat.completion.chunk',
  choices: [{ index: 0, delta: content === null ? {} : { content }, finish_reason: finish }],
});

describe('UpstreamFallback against a scripted upstream', () => {
  let upstream: Server;
  let upstreamUrl = '';
  let handler: (req: IncomingMessage, res: ServerResponse, body: string) => void = (_q, r) => r.end();
  const recorded: Recorded[] = [];
  /** The node in front: forwards every request with `fallback`, reports the outcome. */
  let front: Server;
  let frontUrl = '';
  let fallback: UpstreamFallback;
  let outcomes: ForwardOutcome[] = [];
  let results: UpstreamResult[] = [];
  let unreachableAnswer = true;

  const makeFallback = (o: Partial<ConstructorParameters<typeof UpstreamFallback>[0]> = {}) =>
    new UpstreamFallback({ url: `${upstreamUrl}/`, apiKey: 'sk-up', probeIntervalMs: 60_000, ...o });

  beforeAll(async () => {
    upstream = createServer((req, res) => {
      const chunks: Buffer[] = [];
      const closed = new Promise<void>((r) => res.on('close', () => r()));
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        recorded.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body, closed });
        handler(req, res, body);
      });
    });
    upstreamUrl = await listen(upstream);
    front = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', async () => {
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
        const outcome = await fallback.forward(body, res, { requestId: 'req-42', onResult: (r) => results.push(r) });
        outcomes.push(outcome);
        if (outcome.kind === 'unreachable' && unreachableAnswer) {
          res.writeHead(599, { 'content-type': 'text/plain' });
          res.end(outcome.error);
        }
      });
    });
    frontUrl = await listen(front);
  });
  afterEach(() => {
    fallback?.close();
    recorded.length = 0;
    outcomes = [];
    results = [];
    unreachableAnswer = true;
  });
  afterAll(async () => {
    upstream.closeAllConnections();
    front.closeAllConnections();
    await Promise.all([new Promise((r) => upstream.close(r)), new Promise((r) => front.close(r))]);
  });

  const post = (body: unknown, signal?: AbortSignal) =>
    fetch(`${frontUrl}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), signal });

  it('forwards the body, key and request id, and passes a JSON answer through unchanged', async () => {
    fallback = makeFallback();
    const answer = {
      id: 'chatcmpl-req-42',
      object: 'chat.completion',
      model: 'big',
      choices: [{ index: 0, message: { role: 'assistant', content: 'hi' }, finish_reason: 'stop' }],
      usage: { prompt_tokens: 5, completion_tokens: 1, total_tokens: 6 },
    };
    const text = `${JSON.stringify(answer)}\n`;
    handler = (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'x-upstream-only': 'yes' });
      res.end(text);
    };
    const sent = { model: 'big', messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'https://example.com/a.png' } }] }], extra_field: 7 };
    const r = await post(sent);
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toBe('application/json');
    expect(r.headers.get('x-upstream-only')).toBeNull();
    expect(await r.text()).toBe(text);
    expect(recorded).toHaveLength(1);
    expect(recorded[0].method).toBe('POST');
    expect(recorded[0].url).toBe('/v1/chat/completions');
    expect(recorded[0].headers.authorization).toBe('Bearer sk-up');
    expect(recorded[0].headers['x-request-id']).toBe('req-42');
    // The body as the client sent it: remote media URLs and unknown fields included.
    expect(JSON.parse(recorded[0].body)).toEqual(sent);
    expect(results).toEqual([{ status: 200, model: 'big', done: true, finishReason: 'stop', promptTokens: 5, completionTokens: 1 }]);
    expect(fallback.healthy).toBe(true);
  });

  it('rewrites the model with --fallback-model and keeps everything else', async () => {
    fallback = makeFallback({ model: 'Qwen/Qwen3-VL-8B-Instruct' });
    handler = (_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    await (await post({ model: 'local-name', messages: [], temperature: 0 })).text();
    expect(JSON.parse(recorded[0].body)).toEqual({ model: 'Qwen/Qwen3-VL-8B-Instruct', messages: [], temperature: 0 });
    expect(results[0].model).toBe('Qwen/Qwen3-VL-8B-Instruct');
  });

  it('pipes SSE events as they come: the first one arrives while the upstream still holds the rest', async () => {
    fallback = makeFallback();
    let release: () => void = () => {};
    const gate = new Promise<void>((r) => (release = r));
    handler = async (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' });
      res.write(sse(chunk('Hel')));
      await gate;
      res.write(sse(chunk('lo')));
      res.write(sse(chunk(null, 'length')));
      res.write(sse({ id: 'chatcmpl-up', object: 'chat.completion.chunk', choices: [], usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 } }));
      res.end('data: [DONE]\n\n');
    };
    const r = await post({ model: 'm', messages: [], stream: true });
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
    const reader = r.body!.getReader();
    const decoder = new TextDecoder();
    let text = '';
    // Read until the first event is whole — the upstream has not sent the second yet.
    while (!text.includes('\n\n')) {
      const { value, done } = await reader.read();
      expect(done).toBe(false);
      text += decoder.decode(value, { stream: true });
    }
    expect(text).toBe(sse(chunk('Hel')));
    release();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      text += decoder.decode(value, { stream: true });
    }
    expect(text).toBe(
      sse(chunk('Hel')) +
        sse(chunk('lo')) +
        sse(chunk(null, 'length')) +
        sse({ id: 'chatcmpl-up', object: 'chat.completion.chunk', choices: [], usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 } }) +
        'data: [DONE]\n\n',
    );
    expect(results).toHaveLength(1);
    expect(results[0]).toMatchObject({ status: 200, done: true, finishReason: 'length', promptTokens: 3, completionTokens: 2 });
    expect(results[0].ttft).toBeGreaterThanOrEqual(0);
  });

  it('aborts the upstream request when the client hangs up mid-stream', async () => {
    fallback = makeFallback();
    handler = (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(sse(chunk('a')));
      // … and never ends on its own.
    };
    const abort = new AbortController();
    const r = await post({ model: 'm', messages: [], stream: true }, abort.signal);
    const reader = r.body!.getReader();
    await reader.read();
    abort.abort();
    await reader.read().catch(() => null);
    // The upstream sees its request go away.
    await recorded[0].closed;
    const deadline = Date.now() + 2000;
    while (outcomes.length === 0 && Date.now() < deadline) await new Promise((res) => setTimeout(res, 10));
    expect(outcomes).toEqual([{ kind: 'client_gone' }]);
    expect(results).toEqual([]);
  });

  it("passes the upstream's error answers through (status and body) and notes their code", async () => {
    fallback = makeFallback();
    const error = { error: { message: 'The model `x` does not exist.', type: 'NotFoundError', param: null, code: 404 } };
    handler = (_req, res) => res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify(error));
    const r = await post({ model: 'x', messages: [] });
    expect(r.status).toBe(404);
    expect(await r.json()).toEqual(error);
    expect(results[0]).toMatchObject({ status: 404, done: false, errorCode: '404' });
    // A 404 is an answer: the upstream is up.
    expect(fallback.healthy).toBe(true);
  });

  it('ends a stream the upstream drops midway with an error event and [DONE]', async () => {
    fallback = makeFallback();
    handler = (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(sse(chunk('a')));
      setTimeout(() => res.destroy(), 20);
    };
    const text = await (await post({ model: 'm', messages: [], stream: true })).text();
    expect(text.startsWith(sse(chunk('a')))).toBe(true);
    expect(text).toContain('"code":"upstream_disconnected"');
    expect(text.endsWith('data: [DONE]\n\n')).toBe(true);
    expect(results[0]).toMatchObject({ done: false, errorCode: 'upstream_disconnected' });
  });

  it('marks the upstream unhealthy when it refuses connections or answers 502/503/504, and a probe brings it back', async () => {
    // A port nothing listens on.
    const closed = createServer();
    const deadUrl = await listen(closed);
    await new Promise((r) => closed.close(r));
    fallback = new UpstreamFallback({ url: deadUrl, probeIntervalMs: 60_000 });
    const r = await post({ model: 'm', messages: [] });
    expect(r.status).toBe(599);
    expect(outcomes[0]).toMatchObject({ kind: 'unreachable', timedOut: false });
    expect(fallback.healthy).toBe(false);
    expect(fallback.health().lastError).toMatch(/ECONNREFUSED/);
    expect(await fallback.probe()).toBe(false);
    fallback.close();

    fallback = makeFallback();
    handler = (_req, res) => res.writeHead(503, { 'content-type': 'text/plain' }).end('engine is dead');
    unreachableAnswer = true;
    await (await post({ model: 'm', messages: [] })).text();
    expect(outcomes[0]).toMatchObject({ kind: 'unreachable' });
    expect(fallback.healthy).toBe(false);
    expect(fallback.health().lastError).toContain('engine is dead');
    expect(fallback.models()).toEqual([]);

    handler = (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ object: 'list', data: [{ id: 'big', object: 'model', owned_by: 'vllm' }] }));
    };
    recorded.length = 0;
    expect(await fallback.probe()).toBe(true);
    expect(recorded[0]).toMatchObject({ method: 'GET', url: '/v1/models' });
    expect(recorded[0].headers.authorization).toBe('Bearer sk-up');
    expect(fallback.healthy).toBe(true);
    expect(fallback.models().map((m) => m.id)).toEqual(['big']);
    const h = fallback.health();
    expect(h).toMatchObject({ url: `${upstreamUrl}/v1`, healthy: true, models: ['big'] });
    expect(JSON.stringify(h)).not.toContain('sk-up');
    expect(h.checkedAt).toEqual(expect.any(String));
  });

  it('probes /health when the upstream has no /v1/models, and says so when the key is refused', async () => {
    fallback = makeFallback();
    handler = (req, res) => res.writeHead(req.url === '/health' ? 200 : 404).end();
    expect(await fallback.probe()).toBe(true);
    expect(recorded.map((r) => r.url)).toEqual(['/v1/models', '/health']);
    handler = (_req, res) => res.writeHead(401).end();
    expect(await fallback.probe()).toBe(false);
    expect(fallback.health().lastError).toMatch(/answered 401 \(check --fallback-api-key\)/);
  });

  it('gives up on an upstream that sends no response in time, without marking it down', async () => {
    fallback = makeFallback({ responseTimeoutMs: 150 });
    handler = () => {};
    const t0 = performance.now();
    const r = await post({ model: 'm', messages: [] });
    expect(r.status).toBe(599);
    expect(performance.now() - t0).toBeLessThan(2000);
    expect(outcomes[0]).toMatchObject({ kind: 'unreachable', timedOut: true });
    expect(fallback.healthy).toBe(true);
    // The upstream's request is dropped.
    await recorded[0].closed;
  });

  it('reports health changes once per change', async () => {
    const changes: boolean[] = [];
    fallback = makeFallback({ onHealthChange: (h) => changes.push(h.healthy) });
    handler = (_req, res) => res.writeHead(500).end();
    await fallback.probe();
    await fallback.probe();
    handler = (_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{"object":"list","data":[]}');
    await fallback.probe();
    await fallback.probe();
    expect(changes).toEqual([false, true]);
  });
});

/**
 * What one scripted engine request does: answer, fail before its first event (`fail`), fail
 * after one delta (`failLate`), or fail with a client error (a bad image).
 */
type Script = 'answer' | 'fail' | 'failLate' | 'badImage';

/** An `Engine` that follows a script (the routing in openai-api.ts is under test, not the model). */
class ScriptedEngine implements Engine {
  readonly modelId = 'local-m';
  script: Script = 'answer';
  waiting = 0;
  calls = 0;
  async *stream(): AsyncGenerator<GenerationEvent> {
    this.calls++;
    const script = this.script;
    await new Promise((r) => setTimeout(r, 1));
    if (script === 'fail') throw new Error('device lost');
    if (script === 'badImage') throw new VlmeshError('IMAGE_DECODE', 'not an image');
    yield { kind: 'delta', text: 'local text', tokenIds: [1, 2] };
    if (script === 'failLate') throw new Error('device lost midway');
    yield { kind: 'done', finishReason: 'stop', promptTokens: 3, completionTokens: 2, ttft: 0.001 };
  }
  stats(): EngineStats {
    return { running: 0, waiting: this.waiting, kvUsage: 0 };
  }
  async close(): Promise<void> {}
}

describe('openai-api routing with a fallback', () => {
  let upstream: Server;
  let upstreamUrl = '';
  const upstreamCalls: Record<string, unknown>[] = [];
  const servers: Server[] = [];
  const fallbacks: UpstreamFallback[] = [];
  const logs: Record<string, unknown>[] = [];

  /** The edge: startServer with a scripted engine (or none) and a fallback to `url`. */
  const edge = async (engine: Engine | null, url: string, api: Partial<OpenAiApiOptions> = {}) => {
    const fallback = new UpstreamFallback({ url, probeIntervalMs: 60_000 });
    fallbacks.push(fallback);
    const server = await startServer({
      host: '127.0.0.1',
      port: 0,
      doctor: async () => ({}) as DoctorReport,
      api: { engine, maxTokensLimit: 64, maxQueue: 1, fallback, ...api },
      logSink: (line) => logs.push(JSON.parse(line) as Record<string, unknown>),
    });
    servers.push(server);
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const chat = (body: Record<string, unknown>, key = 'k') =>
      fetch(`${base}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
        body: JSON.stringify({ model: 'local-m', messages: [{ role: 'user', content: 'hi' }], ...body }),
      });
    return { fallback, base, chat };
  };
  const lastLog = () => logs[logs.length - 1];

  beforeAll(async () => {
    upstream = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        if (req.url === '/v1/models') {
          res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ object: 'list', data: [{ id: 'big', object: 'model' }] }));
          return;
        }
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
        upstreamCalls.push(body);
        if (body.stream) {
          res.writeHead(200, { 'content-type': 'text/event-stream' });
          res.write(sse(chunk('from upstream')));
          res.end('data: [DONE]\n\n');
          return;
        }
        const answer = { object: 'chat.completion', model: body.model, choices: [{ index: 0, message: { role: 'assistant', content: 'from upstream' }, finish_reason: 'stop' }] };
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(answer));
      });
    });
    upstreamUrl = await listen(upstream);
  });
  afterEach(() => {
    upstreamCalls.length = 0;
  });
  afterAll(async () => {
    for (const f of fallbacks) f.close();
    for (const s of [...servers, upstream]) {
      s.closeAllConnections();
      await new Promise((r) => s.close(r));
    }
  });

  const content = async (r: Response) => ((await r.json()) as { choices: { message: { content: string } }[] }).choices[0].message.content;

  it('serves locally what it can, and sends engine failures before the first byte upstream', async () => {
    const engine = new ScriptedEngine();
    const { chat } = await edge(engine, upstreamUrl);
    const r = await chat({});
    expect(await content(r)).toBe('local text');
    expect(upstreamCalls).toHaveLength(0);
    await new Promise((res) => setTimeout(res, 10));
    expect(lastLog()).toMatchObject({ status: 200, served_by: 'local' });

    engine.script = 'fail';
    expect(await content(await chat({ temperature: 0 }))).toBe('from upstream');
    expect(upstreamCalls).toEqual([{ model: 'local-m', messages: [{ role: 'user', content: 'hi' }], temperature: 0 }]);
    await new Promise((res) => setTimeout(res, 10));
    expect(lastLog()).toMatchObject({ status: 200, served_by: 'fallback', fallback_reason: 'engine_error' });
    expect(lastLog().error_code).toBeUndefined();

    // Non-streaming: nothing was sent when it failed after a delta, so the upstream still answers.
    engine.script = 'failLate';
    expect(await content(await chat({}))).toBe('from upstream');
    // Streaming: before the first event → upstream; after it → the error ends the stream here.
    engine.script = 'fail';
    expect(await (await chat({ stream: true })).text()).toContain('from upstream');
    upstreamCalls.length = 0;
    engine.script = 'failLate';
    const late = await (await chat({ stream: true })).text();
    expect(late).toContain('local text');
    expect(late).toContain('"code":"internal_error"');
    expect(upstreamCalls).toHaveLength(0);
  });

  it('sends queue-full, over-context and other-model requests upstream, but never client errors', async () => {
    const engine = new ScriptedEngine();
    const { chat } = await edge(engine, upstreamUrl, { apiKeys: ['k'] });
    engine.waiting = 1;
    expect(await content(await chat({}))).toBe('from upstream');
    expect(engine.calls).toBe(0);
    engine.waiting = 0;
    expect(await content(await chat({ max_tokens: 100 }))).toBe('from upstream');
    expect(upstreamCalls[1]).toMatchObject({ max_tokens: 100 });
    await new Promise((res) => setTimeout(res, 10));
    expect(lastLog()).toMatchObject({ served_by: 'fallback', fallback_reason: 'context_length_exceeded' });
    expect(await content(await chat({ model: 'big' }))).toBe('from upstream');
    expect(upstreamCalls[2]).toMatchObject({ model: 'big' });
    expect(engine.calls).toBe(0);
    upstreamCalls.length = 0;

    engine.script = 'badImage';
    const bad = await chat({});
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { code: string } }).error.code).toBe('invalid_image');
    expect((await chat({ max_tokens: 0 })).status).toBe(400);
    expect((await chat({ temperature: 9 })).status).toBe(400);
    expect((await chat({}, 'wrong-key')).status).toBe(401);
    const r = await fetch(`${(await edge(engine, upstreamUrl)).base}/v1/chat/completions`, { method: 'POST', body: '{oops' });
    expect(r.status).toBe(400);
    const rated = await edge(engine, upstreamUrl, { rateLimitPerMinute: 2 });
    for (let i = 0; i < 2; i++) await (await rated.chat({})).arrayBuffer();
    const limited = await rated.chat({});
    expect(limited.status).toBe(429);
    expect(((await limited.json()) as { error: { code: string } }).error.code).toBe('rate_limited');
    expect(upstreamCalls).toHaveLength(0);
  });

  it("lists the upstream's models and counts the fallback path in /metrics", async () => {
    const { fallback, base, chat } = await edge(new ScriptedEngine(), upstreamUrl);
    await fallback.probe();
    const models = (await (await fetch(`${base}/v1/models`)).json()) as { data: { id: string }[] };
    expect(models.data.map((m) => m.id)).toEqual(['local-m', 'big']);
    await (await chat({ model: 'big' })).arrayBuffer();
    await (await chat({})).arrayBuffer();
    await new Promise((res) => setTimeout(res, 10));
    const f = parsePrometheus(await (await fetch(`${base}/metrics`)).text());
    expect(sampleValue(f, 'vlmesh:request_success_total', { path: 'fallback', finished_reason: 'stop' })).toBe(1);
    expect(sampleValue(f, 'vlmesh:request_success_total', { path: 'local', finished_reason: 'stop' })).toBe(1);
    expect(sampleValue(f, 'vlmesh:fallback_healthy')).toBe(1);
    // The upstream's JSON had no usage: no token counts are made up for it.
    expect(sampleValue(f, 'vlmesh:generation_tokens_total', { path: 'fallback' })).toBe(0);
    expect(sampleValue(f, 'vlmesh:e2e_request_latency_seconds_count', { path: 'fallback' })).toBe(1);
  });

  it('with the upstream down: the local error stands, and with nothing local a 503', async () => {
    const closed = createServer();
    const deadUrl = await listen(closed);
    await new Promise((r) => closed.close(r));
    const engine = new ScriptedEngine();
    engine.waiting = 1;
    const { base, chat, fallback } = await edge(engine, deadUrl);
    for (let i = 0; i < 2; i++) {
      // First the forward fails (and marks it down), then it is not tried at all.
      const r = await chat({});
      expect(r.status).toBe(429);
      expect(((await r.json()) as { error: { code: string } }).error.code).toBe('queue_full');
      expect(fallback.healthy).toBe(false);
    }
    await new Promise((res) => setTimeout(res, 10));
    expect(lastLog()).toMatchObject({ status: 429, served_by: 'local', fallback_reason: 'queue_full', upstream_error: expect.stringMatching(/ECONNREFUSED/) });
    const other = await chat({ model: 'big' });
    expect(other.status).toBe(503);
    const body = (await other.json()) as { error: { code: string; type: string; message: string } };
    expect(body.error).toMatchObject({ code: 'upstream_unavailable', type: 'service_unavailable_error' });
    expect(body.error.message).toMatch(/`big` is not served by this node, and the fallback upstream is unavailable/);
    const health = (await (await fetch(`${base}/health`)).json()) as { status: string; fallback: { healthy: boolean } };
    expect(health).toMatchObject({ status: 'ok', fallback: { healthy: false } });
    const noModel = await edge(null, deadUrl);
    const r = await noModel.chat({ max_tokens: 100000 });
    expect(r.status).toBe(503);
    expect(((await (await fetch(`${noModel.base}/health`)).json()) as { status: string }).status).toBe('degraded');
  });
});
