/**
 * `vlmesh serve --model` through the official `openai` client: chat completions streamed and
 * not, with an image, greedy output equal to the official pipeline's, usage, /v1/models, and the
 * error answers (status + `{"error":{...}}`), with the server still answering after each.
 */
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { crc32 } from '../../shared/mesh/wire.ts';
import { startServe, stopServe } from '../support/serve.ts';

const golden = fileURLToPath(new URL('../fixtures/golden/', import.meta.url));
const KEY = 'sk-test-key';
const MODEL = 'realvocab';

/** The first bytes of a PNG of `width`×`height` (signature + IHDR): enough for its size to be read. */
function pngHeader(width: number, height: number): Uint8Array {
  const ihdr = new Uint8Array(4 + 13);
  ihdr.set([0x49, 0x48, 0x44, 0x52]); // "IHDR"
  const dv = new DataView(ihdr.buffer);
  dv.setUint32(4, width);
  dv.setUint32(8, height);
  ihdr.set([8, 2, 0, 0, 0], 12); // 8-bit RGB
  const out = new Uint8Array(8 + 4 + ihdr.length + 4);
  out.set([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  new DataView(out.buffer).setUint32(8, 13);
  out.set(ihdr, 12);
  new DataView(out.buffer).setUint32(12 + ihdr.length, crc32(ihdr));
  return out;
}

const gold = JSON.parse(readFileSync(`${golden}e2e/case_one_image.json`, 'utf8'));
const imageUrl = `data:image/png;base64,${readFileSync(`${golden}e2e/img_a_256x320.png`).toString('base64')}`;
const imageMessage = (url = imageUrl): OpenAI.ChatCompletionMessageParam[] => [
  {
    role: 'user',
    content: [
      { type: 'image_url', image_url: { url } },
      { type: 'text', text: 'Describe this image.' },
    ],
  },
];

describe('vlmesh serve --model: OpenAI-compatible API', () => {
  let server: { p: ChildProcess; url: string } | undefined;
  let client: OpenAI;
  const post = (body: string, headers: Record<string, string> = {}) =>
    fetch(`${server!.url}v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${KEY}`, ...headers },
      body,
    });

  beforeAll(async () => {
    server = await startServe([
      '--model', `${golden}realvocab`, '--dtype', 'f32', '--api-key', 'other-key', '--api-key', KEY, '--max-body-mb', '1',
      '--max-image-pixels', '1000000', '--max-image-mb', '0.5',
    ]);
    client = new OpenAI({ baseURL: `${server.url}v1`, apiKey: KEY, maxRetries: 0 });
  }, 40_000);
  afterAll(() => stopServe(server?.p));

  it('lists the model', async () => {
    const models = await client.models.list();
    expect(models.data.map((m) => m.id)).toEqual([MODEL]);
  });

  it('answers a greedy image request like the official pipeline (non-streaming)', async () => {
    const r = await client.chat.completions.create({ model: MODEL, messages: imageMessage(), temperature: 0, max_tokens: 8 });
    expect(r.object).toBe('chat.completion');
    expect(r.choices[0].message.role).toBe('assistant');
    expect(r.choices[0].message.content).toBe(gold.generated_text_skip_special);
    expect(r.choices[0].finish_reason).toBe('length');
    expect(r.usage).toEqual({ prompt_tokens: gold.input_ids.shape[0], completion_tokens: 8, total_tokens: gold.input_ids.shape[0] + 8 });
  });

  it('streams the same text, then usage with include_usage, then [DONE]', async () => {
    const stream = await client.chat.completions.create({
      model: MODEL,
      messages: imageMessage(),
      temperature: 0,
      max_completion_tokens: 8,
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = '';
    const finish: (string | null)[] = [];
    let usage: OpenAI.CompletionUsage | null | undefined;
    for await (const c of stream) {
      expect(c.object).toBe('chat.completion.chunk');
      for (const ch of c.choices) {
        text += ch.delta.content ?? '';
        finish.push(ch.finish_reason);
      }
      if (c.usage) usage = c.usage;
    }
    expect(text).toBe(gold.generated_text_skip_special);
    expect(finish.at(-1)).toBe('length');
    expect(usage).toEqual({ prompt_tokens: gold.input_ids.shape[0], completion_tokens: 8, total_tokens: gold.input_ids.shape[0] + 8 });
  });

  it('chats text-only with sampling parameters and a stop string', async () => {
    const base = { model: MODEL, messages: [{ role: 'user' as const, content: 'Hello' }], max_tokens: 4 };
    const a = await client.chat.completions.create({ ...base, temperature: 0.8, top_p: 0.9, seed: 7, presence_penalty: 0.5, frequency_penalty: 0.2 });
    const b = await client.chat.completions.create({ ...base, temperature: 0.8, top_p: 0.9, seed: 7, presence_penalty: 0.5, frequency_penalty: 0.2 });
    expect(a.choices[0].message.content).toBe(b.choices[0].message.content);
    expect(a.usage?.completion_tokens).toBeGreaterThan(0);
    // Greedy text, then the same request stopped at a string inside it.
    const g = await client.chat.completions.create({ ...base, temperature: 0 });
    const text = g.choices[0].message.content ?? '';
    const stopAt = text.slice(Math.max(1, text.length - 2));
    const s = await client.chat.completions.create({ ...base, temperature: 0, stop: [stopAt] });
    expect(s.choices[0].finish_reason).toBe('stop');
    expect(s.choices[0].message.content).toBe(text.slice(0, text.indexOf(stopAt)));
  });

  it('answers 401 alike for a missing and a wrong key', async () => {
    const wrong = new OpenAI({ baseURL: `${server!.url}v1`, apiKey: 'nope', maxRetries: 0 });
    await expect(wrong.models.list()).rejects.toMatchObject({ status: 401 });
    const r1 = await fetch(`${server!.url}v1/models`);
    const r2 = await fetch(`${server!.url}v1/models`, { headers: { authorization: 'Bearer nope' } });
    expect(r1.status).toBe(401);
    expect(r2.status).toBe(401);
    expect(await r1.json()).toEqual(await r2.json());
    expect((await fetch(`${server!.url}health`)).status).toBe(200);
  });

  it('rejects bad requests with precise errors', async () => {
    const bad = async (body: string, status: number, code: string, param?: string) => {
      const r = await post(body);
      expect(r.status, body.slice(0, 200)).toBe(status);
      const j = await r.json();
      expect(j.error.code).toBe(code);
      expect(typeof j.error.message).toBe('string');
      expect(typeof j.error.type).toBe('string');
      if (param !== undefined) expect(j.error.param).toBe(param);
    };
    const req = (over: Record<string, unknown>) => JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'hi' }], max_tokens: 2, ...over });
    const img = (url: string) => [{ role: 'user', content: [{ type: 'image_url', image_url: { url } }, { type: 'text', text: 'x' }] }];
    await bad('{"model": "realvocab", "messages": [', 400, 'invalid_json');
    await bad(req({ temperature: 'hot' }), 400, 'invalid_type', 'temperature');
    await bad(req({ max_tokens: 0 }), 400, 'invalid_value', 'max_tokens');
    await bad(req({ messages: 'hi' }), 400, 'invalid_type', 'messages');
    await bad(req({ messages: [{ role: 'user', content: [{ type: 'input_audio' }] }] }), 400, 'unsupported_content_type', 'messages[0].content[0].type');
    await bad(req({ messages: img('data:image/png;base64,@@not base64@@') }), 400, 'invalid_base64', 'messages[0].content[0].image_url.url');
    await bad(req({ messages: img('data:application/pdf;base64,JVBERi0=') }), 400, 'unsupported_media_type', 'messages[0].content[0].image_url.url');
    await bad(req({ messages: img('data:image/gif;base64,R0lGODlhAQABAAAAACw=') }), 400, 'unsupported_media_type');
    await bad(req({ messages: img('data:image/jpeg;base64,/9j/4AAQSkZJRgABAQ==') }), 400, 'invalid_image');
    await bad(req({ messages: img('http://127.0.0.1/x.png') }), 400, 'media_fetch_forbidden', 'messages[0].content[0].image_url.url');
    // Over the pixel guard (--max-image-pixels 1000000), told by the header before any decoding;
    // over the image byte cap (--max-image-mb 0.5) though within the body limit.
    const b64 = (u: Uint8Array) => Buffer.from(u).toString('base64');
    await bad(req({ messages: img(`data:image/png;base64,${b64(pngHeader(1001, 1000))}`) }), 400, 'image_too_large', 'messages');
    await bad(req({ messages: img(`data:image/png;base64,${b64(pngHeader(40_000, 40_000))}`) }), 400, 'image_too_large', 'messages');
    const big = new Uint8Array(600_000);
    big.set(pngHeader(100, 100));
    await bad(req({ messages: img(`data:image/png;base64,${b64(big)}`) }), 400, 'media_too_large', 'messages');
    // Unknown model: 404 model_not_found, as OpenAI answers, through the official client too.
    await bad(req({ model: 'gpt-4o' }), 404, 'model_not_found', 'model');
    await expect(client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] })).rejects.toMatchObject({
      status: 404,
      code: 'model_not_found',
    });
    // Over the 1 MiB body limit.
    await expect(
      client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'x'.repeat(1_200_000) }], max_tokens: 1 }),
    ).rejects.toMatchObject({ status: 413 });
    // Still serving correctly.
    const r = await client.chat.completions.create({ model: MODEL, messages: imageMessage(), temperature: 0, max_tokens: 3 });
    expect(gold.generated_text_skip_special.startsWith(r.choices[0].message.content)).toBe(true);
  });

  it('a client that aborts a stream mid-way does not break the next request', async () => {
    const ac = new AbortController();
    const stream = await client.chat.completions.create(
      { model: MODEL, messages: [{ role: 'user', content: 'Tell me a long story.' }], max_tokens: 500, temperature: 0, stream: true },
      { signal: ac.signal },
    );
    let chunks = 0;
    // The client ends the iteration quietly (or with an abort error, depending on timing).
    try {
      for await (const _ of stream) {
        if (++chunks === 3) ac.abort();
      }
    } catch (e) {
      expect((e as Error).name).toMatch(/Abort/);
    }
    expect(chunks).toBeGreaterThanOrEqual(3);
    const t0 = performance.now();
    const r = await client.chat.completions.create({ model: MODEL, messages: imageMessage(), temperature: 0, max_tokens: 8 });
    expect(r.choices[0].message.content).toBe(gold.generated_text_skip_special);
    // The aborted request stopped at once instead of running its 500 tokens first.
    expect(performance.now() - t0).toBeLessThan(15_000);
  });
});

describe('vlmesh serve without --model', () => {
  it('answers chat with 503 and lists no models', async () => {
    const s = await startServe([]);
    try {
      const client = new OpenAI({ baseURL: `${s.url}v1`, apiKey: 'unused', maxRetries: 0 });
      expect((await client.models.list()).data).toEqual([]);
      const r = await fetch(`${s.url}v1/chat/completions`, {
        method: 'POST',
        body: JSON.stringify({ model: 'x', messages: [{ role: 'user', content: 'hi' }] }),
      });
      expect(r.status).toBe(503);
      expect((await r.json()).error.code).toBe('model_not_loaded');
    } finally {
      await stopServe(s.p);
    }
  }, 30_000);
});
