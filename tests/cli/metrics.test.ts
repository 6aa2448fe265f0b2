
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Served, startServe, stopServe } from '../support/serve.ts';
import { parsePrometheus, sampleValue } from '../support/prometheus-parse.ts';

const model = fileURLToPath(new URL('../fixtures/golden/realvocab', import.meta.url));




describe('vlmesh serve --model: /metrics and request logs', () => {
  let server: Served | undefined;
  const chat = (body: string, headers: Record<string, string> = {}) =>
    fetch(`${server!.url}v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
  const request = (stream: boolean) =>
    JSON.stringify({ model: 'realvocab', messages: [{ role: 'user', content: 'Hello' }], max_tokens: 3, temperature: 0, stream });

  beforeAll(async () => {
    server = await startServe(['--model', model]);
  }, 40_000);
  afterAll(() => stopServe(server?.p));

  it('counts two chat requests and a bad one', async () => {
    const before = parsePrometheus(await (await fetch(`${server!.url}metrics`)).text());
    expect(sampleValue(before, 'vlmesh:num_requests_running')).toBe(0);

    const a = await chat(request(false), { 'x-request-id': 'test-req-1' });
    expect(a.status).toBe(200);
    expect(a.headers.get('x-request-id')).toBe('test-req-1');
    const body = (await a.json()) as { id: string; usage: { prompt_tokens: number; completion_tokens: number } };
    expect(body.id).toBe('chatcmpl-test-req-1');
    const b = await chat(request(true));
    expect(b.status).toBe(200);
    const generatedId = b.headers.get('x-request-id');
    expect(generatedId).toMatch(/^[0-9a-f]{32}$/);
    expect(await b.text()).toContain(`"id":"chatcmpl-${generatedId}"`);
    const bad = await chat('{not json');
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { code: string } }).error.code).toBe('invalid_json');

    const res = await fetch(`${server!.url}metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const f = parsePrometheus(await res.text());
    const local = { path: 'local' };
    const successes =
      sampleValue(f, 'vlmesh:request_success_total', { path: 'local', finished_reason: 'length' }) +
      (f.get('vlmesh:request_success_total')?.samples.some((s) => s.labels.finished_reason === 'stop')
        ? sampleValue(f, 'vlmesh:request_success_total', { path: 'local', finished_reason: 'stop' })
        : 0);
    expect(successes).toBe(2);
    expect(sampleValue(f, 'vlmesh:request_errors_total', { path: 'local', status: '400', code: 'invalid_json' })).toBe(1);
    expect(sampleValue(f, 'vlmesh:time_to_first_token_seconds_count', local)).toBe(2);
    expect(sampleValue(f, 'vlmesh:e2e_request_latency_seconds_count', local)).toBe(2);
    expect(sampleValue(f, 'vlmesh:request_generation_tokens_count', local)).toBe(2);
    expect(sampleValue(f, 'vlmesh:prompt_tokens_total', local)).toBe(2 * body.usage.prompt_tokens);
    expect(sampleValue(f, 'vlmesh:generation_tokens_total', local)).toBeGreaterThanOrEqual(body.usage.completion_tokens);
    expect(sampleValue(f, 'vlmesh:num_requests_running')).toBe(0);
    expect(sampleValue(f, 'vlmesh:num_requests_waiting')).toBe(0);
    expect(sampleValue(f, 'vlmesh:gpu_memory_bytes')).toBeGreaterThan(0);
    const kv = sampleValue(f, 'vlmesh:kv_cache_usage_perc');
    expect(kv).toBeGreaterThanOrEqual(0);
    expect(kv).toBeLessThanOrEqual(1);

    // One JSON line per /v1 request on stderr (the /metrics scrapes are not logged).
    const logLines = () =>
      server!
        .stderr()
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, unknown>)
        .filter((l) => l.msg === 'request');
    // stderr travels through a pipe: give the last line a moment to arrive.
    for (let i = 0; i < 50 && logLines().length < 3; i++) await new Promise((r) => setTimeout(r, 20));
    const lines = logLines();
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatchObject({ request_id: 'test-req-1', method: 'POST', path: '/v1/chat/completions', status: 200, model: 'realvocab' });
    expect(lines[0].prompt_tokens).toBe(body.usage.prompt_tokens);
    expect(lines[0].completion_tokens).toBe(body.usage.completion_tokens);
    expect(typeof lines[0].ttft_ms).toBe('number');
    expect(typeof lines[0].duration_ms).toBe('number');
    expect(lines[1]).toMatchObject({ request_id: generatedId, status: 200 });
    expect(lines[2]).toMatchObject({ status: 400, error_code: 'invalid_json', level: 'warn' });
  });
});
