/**
 * The server engine against a real HTTP server that speaks the OpenAI streaming protocol, with
 * events cut at awkward places, errors in both forms, and a client abort.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GenerationEvent } from '../../shared/engine/engine.ts';
import { openServerEngine, ServerEngineError, toChatCompletionBody } from '../../web/src/engine/server-engine.ts';
import type { WebGenerationRequest } from '../../web/src/engine/web-request.ts';

type Handler = (req: IncomingMessage, body: string, res: ServerResponse) => void;
let server: Server;
let base = '';
let handler: Handler = () => undefined;
const bodies: Record<string, unknown>[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      if (req.url === '/v1/models') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ object: 'list', data: [{ id: 'tiny-model', object: 'model' }] }));
        return;
      }
      if (body) bodies.push(JSON.parse(body));
      handler(req, body, res);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

const PNG = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 1, 2, 3]);

function request(extra: Partial<WebGenerationRequest> = {}): WebGenerationRequest {
  return {
    id: 'r1',
    messages: [
      { role: 'system', content: 'be brief' },
      { role: 'user', content: [{ type: 'image' }, { type: 'text', text: 'Describe this image.' }] },
    ],
    images: [{ bytes: PNG }],
    sampling: { maxTokens: 6, temperature: 0, topP: 1, topK: 0 },
    ...extra,
  };
}

const chunk = (content: string | null, finish: string | null = null) =>
  `data: ${JSON.stringify({ object: 'chat.completion.chunk', choices: [{ index: 0, delta: content === null ? {} : { content }, finish_reason: finish }] })}\n\n`;

async function collect(it: AsyncIterable<GenerationEvent>): Promise<GenerationEvent[]> {
  const out: GenerationEvent[] = [];
  for await (const ev of it) out.push(ev);
  return out;
}

describe('toChatCompletionBody', () => {
  it('sends images as data: URLs in place, the sampling fields, streaming with usage', () => {
    const body = toChatCompletionBody('m', request({ sessionId: 's1', videoFile: undefined }));
    expect(body).toEqual({
      model: 'm',
      messages: [
        { role: 'system', content: 'be brief' },
        {
          role: 'user',
          content: [
            { type: 'image_url', image_url: { url: `data:image/png;base64,${Buffer.from(PNG).toString('base64')}` } },
            { type: 'text', text: 'Describe this image.' },
          ],
        },
      ],
      stream: true,
      stream_options: { include_usage: true },
      max_tokens: 6,
      temperature: 0,
      session_id: 's1',
    });
  });

  it('sends the video file as a video_url data: URL, and leaves max_tokens to the server when asked', () => {
    const body = toChatCompletionBody('m', {
      ...request({ messages: [{ role: 'user', content: [{ type: 'video' }, { type: 'text', text: 'what happens?' }] }], images: [] }),
      videoFile: { bytes: new Uint8Array([0, 0, 0, 0x18]), mimeType: 'video/mp4' },
      sampling: { maxTokens: 100, maxTokensAuto: true, temperature: 0.7, topP: 0.9, topK: 20 },
    });
    expect((body.messages as { content: unknown[] }[])[0]!.content[0]).toEqual({ type: 'video_url', video_url: { url: 'data:video/mp4;base64,AAAAGA==' } });
    expect(body.max_tokens).toBeUndefined();
    expect(body).toMatchObject({ temperature: 0.7, top_p: 0.9, top_k: 20 });
  });
});

describe('ServerEngine', () => {
  it('asks /v1/models for the model, streams deltas split across chunks, ends with usage', async () => {
    const sse =
      `data: ${JSON.stringify({ choices: [{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }] })}\n\n` +
      chunk('Hé') +
      chunk('llo 🌍') +
      chunk(null, 'length') +
      `data: ${JSON.stringify({ choices: [], usage: { prompt_tokens: 94, completion_tokens: 2, total_tokens: 96 } })}\n\n` +
      'data: [DONE]\n\n';
    handler = (_req, _body, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      const bytes = Buffer.from(sse);
      // 7-byte pieces cut JSON, UTF-8 characters and the blank lines.
      let i = 0;
      const step = () => {
        if (i >= bytes.length) return res.end();
        res.write(bytes.subarray(i, i + 7));
        i += 7;
        setImmediate(step);
      };
      step();
    };
    const engine = await openServerEngine({ baseUrl: base });
    expect(engine.modelId).toBe('tiny-model');
    const events = await collect(engine.stream(request()));
    expect(bodies.at(-1)).toMatchObject({ model: 'tiny-model', stream: true, max_tokens: 6, temperature: 0 });
    const text = events.flatMap((e) => (e.kind === 'delta' ? [e.text] : [])).join('');
    expect(text).toBe('Héllo 🌍');
    const done = events.at(-1)!;
    expect(done).toMatchObject({ kind: 'done', finishReason: 'length', promptTokens: 94, completionTokens: 2 });
    expect(done.kind === 'done' && done.ttft).toBeGreaterThan(0);
  });

  it('throws the OpenAI error of a non-200 answer with its fields', async () => {
    handler = (_req, _body, res) => {
      res.writeHead(400, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { message: "'max_tokens' must be >= 1, got 0", type: 'invalid_request_error', param: 'max_tokens', code: 'invalid_value' } }));
    };
    const engine = await openServerEngine({ baseUrl: base, model: 'tiny-model' });
    const err = await collect(engine.stream(request())).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ServerEngineError);
    expect(err).toMatchObject({ status: 400, type: 'invalid_request_error', apiCode: 'invalid_value', param: 'max_tokens', message: "'max_tokens' must be >= 1, got 0" });
  });

  it('throws an error reported inside the stream, after the text before it', async () => {
    handler = (_req, _body, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.end(`${chunk('partial')}data: ${JSON.stringify({ error: { message: 'device lost', type: 'server_error', param: null, code: 'internal_error' } })}\n\ndata: [DONE]\n\n`);
    };
    const engine = await openServerEngine({ baseUrl: base, model: 'tiny-model' });
    const seen: string[] = [];
    const err = await (async () => {
      for await (const ev of engine.stream(request())) if (ev.kind === 'delta') seen.push(ev.text);
    })().catch((e: unknown) => e);
    expect(seen).toEqual(['partial']);
    expect(err).toMatchObject({ message: 'device lost', apiCode: 'internal_error' });
  });

  it('reports a stream that ends without [DONE] as an error', async () => {
    handler = (_req, _body, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.end(chunk('cut'));
    };
    const engine = await openServerEngine({ baseUrl: base, model: 'tiny-model' });
    await expect(collect(engine.stream(request()))).rejects.toThrow(/before \[DONE\]/);
  });

  it('aborting the signal closes the connection and ends with finishReason abort', async () => {
    let closed: () => void = () => undefined;
    const serverSawClose = new Promise<void>((r) => (closed = r));
    handler = (_req, _body, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      let n = 0;
      const t = setInterval(() => res.write(chunk(`t${n++} `)), 10);
      res.on('close', () => {
        clearInterval(t);
        closed();
      });
    };
    const engine = await openServerEngine({ baseUrl: base, model: 'tiny-model' });
    const abort = new AbortController();
    const events: GenerationEvent[] = [];
    for await (const ev of engine.stream(request({ signal: abort.signal }))) {
      events.push(ev);
      if (events.length === 3) abort.abort();
    }
    await serverSawClose;
    expect(events.filter((e) => e.kind === 'delta').length).toBe(3);
    expect(events.at(-1)).toMatchObject({ kind: 'done', finishReason: 'abort', completionTokens: 3 });
    expect(engine.stats().running).toBe(0);
  });

  it('explains an unreachable server', async () => {
    const engine = await openServerEngine({ baseUrl: 'http://127.0.0.1:1/', model: 'm' });
    const err = await collect(engine.stream(request())).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ServerEngineError);
    expect((err as ServerEngineError).message).toMatch(/cannot reach the server/);
  });
});
