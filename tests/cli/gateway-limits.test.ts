/**
 * `vlmesh serve` gateway limits, over plain fetch on loopback: the context check (400
 * `context_length_exceeded` before generating) and `truncate_prompt: "keep_system_and_recent"`,
 * the per-key rate limit (429 `rate_limited` + Retry-After), the queue limit (429 `queue_full` +
 * Retry-After) and `--api-keys-file`. One server, small limits; each test uses its own keys so the
 * 3-a-minute rate limit only bites where it is meant to.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServe, stopServe } from '../support/serve.ts';

const golden = fileURLToPath(new URL('../fixtures/golden/', import.meta.url));
const MODEL = 'realvocab';
const MAX_MODEL_LEN = 64;



type Message = { role: string; content: string };

const SYSTEM: Message = { role: 'system', content: 'You are terse.' };
const LAST: Message = { role: 'user', content: 'Say hi.' };
/** Older turns that push the prompt past 64 tokens. */
const HISTORY: Message[] = [
  { role: 'user', content: 'Tell me about the history of the lighthouse keepers along the northern coast in the winter months.' },
  { role: 'assistant', content: 'They kept the lamps lit through long storms, trimming wicks and hauling oil up the stairs every night.' },
  { role: 'user', content: 'And what did they eat when the supply boats could not reach the island for weeks?' },
  { role: 'assistant', content: 'Salted fish, hard bread, and whatever the garden gave before the frost came in.' },
];

describe('vlmesh serve: gateway limits', () => {
  let server: { p: ChildProcess; url: string } | undefined;
  let dir = '';

  const post = (key: string, body: unknown, signal?: AbortSignal) =>
    fetch(`${server!.url}v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
      body: JSON.stringify({ model: MODEL, temperature: 0, ...(body as object) }),
      signal,
    });

  const waitingGauge = async (): Promise<number> => {
    const text = await (await fetch(`${server!.url}metrics`)).text();
    const m = /^vlmesh:num_requests_waiting(?:\{[^}]*\})? (\d+)/m.exec(text);
    return m ? Number(m[1]) : -1;
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'vlmesh-keys-'));
    const keys = ['# gateway test keys', '', 'k-ctx1', 'k-ctx2', 'k-ctx3', '  k-rate-b  ', 'k-q1', 'k-q2', 'k-q3', 'k-file'];
    writeFileSync(join(dir, 'keys.txt'), `${keys.join('\n')}\n`);
    server = await startServe([
      '--model', `${golden}realvocab`, '--dtype', 'f32',
      '--api-key', 'k-rate-a', '--api-keys-file', join(dir, 'keys.txt'),
      '--max-model-len', String(MAX_MODEL_LEN), '--rate-limit', '3', '--max-queue', '1', '--max-num-seqs', '1',
    ]);
  }, 40_000);
  afterAll(async () => {
    await stopServe(server?.p);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('rejects a prompt + max_tokens over the context with 400 context_length_exceeded', async () => {
    const r = await post('k-ctx1', { messages: [SYSTEM, ...HISTORY, LAST], max_tokens: 4 });
    expect(r.status).toBe(400);
    const body = await r.json();
    expect(body.error.code).toBe('context_length_exceeded');
    expect(body.error.param).toBe('messages');
    expect(body.error.message).toContain(`${MAX_MODEL_LEN} tokens`);
    // max_tokens alone over the context is refused by validation.
    const big = await post('k-ctx1', { messages: [LAST], max_tokens: MAX_MODEL_LEN + 1 });
    expect(big.status).toBe(400);
  });

  it('truncate_prompt keeps the system prompt and the last turn, and answers 200', async () => {
    const short = await post('k-ctx2', { messages: [SYSTEM, LAST], max_tokens: 4 });
    expect(short.status).toBe(200);
    const shortBody = await short.json();
    const r = await post('k-ctx2', { messages: [SYSTEM, ...HISTORY, LAST], max_tokens: 4, truncate_prompt: 'keep_system_and_recent' });
    expect(r.status).toBe(200);
    const body = await r.json();
    expect(body.usage.prompt_tokens + 4).toBeLessThanOrEqual(MAX_MODEL_LEN);
    expect(body.usage.prompt_tokens).toBeGreaterThanOrEqual(shortBody.usage.prompt_tokens);
    // Greedy: the same prompt as system + last turn (or one more fitting turn) → a valid answer.
    expect(body.choices[0].message.content).toEqual(expect.any(String));
  });

  it('still 400 with truncate_prompt when the last turn alone does not fit; bad values are 400', async () => {
    const long: Message = { role: 'user', content: HISTORY.map((m) => m.content).join(' ') };
    const r = await post('k-ctx3', { messages: [SYSTEM, ...HISTORY, long], max_tokens: 4, truncate_prompt: 'keep_system_and_recent' });
    expect(r.status).toBe(400);
    expect((await r.json()).error.code).toBe('context_length_exceeded');
    const bad = await post('k-ctx3', { messages: [LAST], max_tokens: 1, truncate_prompt: 'middle' });
    expect(bad.status).toBe(400);
    expect((await bad.json()).error.param).toBe('truncate_prompt');
  });

  it('rate-limits each key to 3 a minute with 429 rate_limited + Retry-After; another key still passes', async () => {
    for (let i = 0; i < 3; i++) {
      const r = await post('k-rate-a', { messages: [LAST], max_tokens: 1 });
      expect(r.status).toBe(200);
      await r.arrayBuffer();
    }
    const over = await post('k-rate-a', { messages: [LAST], max_tokens: 1 });
    expect(over.status).toBe(429);
    const retry = Number(over.headers.get('retry-after'));
    expect(retry).toBeGreaterThanOrEqual(1);
    expect(retry).toBeLessThanOrEqual(60);
    const body = await over.json();
    expect(body.error.code).toBe('rate_limited');
    expect(body.error.type).toBe('rate_limit_exceeded');
    const other = await post('k-rate-b', { messages: [LAST], max_tokens: 1 });
    expect(other.status).toBe(200);
  });

  it('answers 429 queue_full + Retry-After while one request runs and one waits', async () => {
    const abort = new AbortController();
    const long = { messages: [LAST], max_tokens: 50, stream: true };
    // A runs (its headers come with its first token), B waits behind it.
    const a = await post('k-q1', long, abort.signal);
    expect(a.status).toBe(200);
    const b = post('k-q2', long, abort.signal).catch(() => null);
    const deadline = Date.now() + 5000;
    while ((await waitingGauge()) < 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(await waitingGauge()).toBe(1);
    const c = await post('k-q3', { messages: [LAST], max_tokens: 1 });
    expect(c.status).toBe(429);
    expect(Number(c.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect((await c.json()).error.code).toBe('queue_full');
    abort.abort();
    await b;
    // The queue drains once the clients hang up.
    const until = Date.now() + 10_000;
    while ((await waitingGauge()) > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    expect(await waitingGauge()).toBe(0);
  }, 20_000);

  it('accepts keys from --api-keys-file (comments and blanks skipped) and refuses unknown keys', async () => {
    const ok = await post('k-file', { messages: [LAST], max_tokens: 1 });
    expect(ok.status).toBe(200);
    await ok.arrayBuffer();
    expect((await post('# gateway test keys', { messages: [LAST], max_tokens: 1 })).status).toBe(401);
    expect((await post('k-unknown', { messages: [LAST], max_tokens: 1 })).status).toBe(401);
  });
});
