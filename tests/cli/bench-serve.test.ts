/**
 * `vlmesh bench serve` as a real child process against a real `vlmesh serve --model` (the tiny
 * realvocab checkpoint, f32): the JSON report's counts, token totals and ordered percentiles;
 * `--turns 2` reports TTFT per turn; a non-loopback URL is refused with a usage error; a server
 * that is down gives a clear error and a non-zero exit.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LoadReport } from '../../edge-node/bench/load.ts';
import { startServe, stopServe } from '../support/serve.ts';

const bin = fileURLToPath(new URL('../../edge-node/bin/vlmesh.mjs', import.meta.url));
const golden = fileURLToPath(new URL('../fixtures/golden/', import.meta.url));

function bench(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [bin, 'bench', 'serve', ...args]);
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('error', reject);
    p.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

function expectOrdered(s: { mean: number; p50: number; p90: number; p99: number } | null, what: string) {
  expect(s, what).not.toBeNull();
  expect(s!.p50, what).toBeGreaterThan(0);
  expect(s!.p50, what).toBeLessThanOrEqual(s!.p90);
  expect(s!.p90, what).toBeLessThanOrEqual(s!.p99);
}

describe('vlmesh bench serve', () => {
  let server: { p: ChildProcess; url: string } | undefined;

  beforeAll(async () => {
    server = await startServe(['--model', `${golden}realvocab`, '--dtype', 'f32']);
  }, 40_000);
  afterAll(() => stopServe(server?.p));

  it('drives the server and reports counts, tokens and ordered percentiles as JSON', async () => {
    const r = await bench(['--url', server!.url, '--requests', '6', '--concurrency', '3', '--max-tokens', '4', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout) as LoadReport;
    expect(report).toMatchObject({ model: 'realvocab', requests: 6, concurrency: 3, completed: 6, failed: 0, aborted: 0, not_sent: 0, errors: {} });
    expect(report.output_tokens).toBe(24);
    expect(report.usage_reported).toBe(true);
    expect(report.input_tokens).toBeGreaterThan(6 * 10);
    expect(report.ttft_ms!.mean).toBeGreaterThan(0);
    for (const k of ['ttft_ms', 'itl_ms', 'e2e_ms', 'tpot_ms', 'per_request_output_tok_s'] as const) expectOrdered(report[k], k);
    // Every request's E2E covers its TTFT.
    expect(report.e2e_ms!.p50).toBeGreaterThan(report.ttft_ms!.p50);
    expect(report.duration_s).toBeGreaterThan(0);
    // duration_s is rounded to the millisecond, the throughput is not: within 1 %.
    expect(Math.abs(report.output_throughput_tok_s - 24 / report.duration_s) / report.output_throughput_tok_s).toBeLessThan(0.01);
    expect(report.turns).toBeUndefined();
    // Progress goes to stderr (not a TTY here: one line per 10 %), the report alone to stdout.
    expect(r.stderr).toContain('6/6 requests done');
  });

  it('--turns 2 continues each conversation and reports TTFT per turn', async () => {
    const r = await bench(['--url', `${server!.url}v1`, '--requests', '4', '--concurrency', '2', '--max-tokens', '3', '--turns', '2', '--session', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout) as LoadReport;
    expect(report).toMatchObject({ completed: 4, failed: 0, output_tokens: 12 });
    expect(report.turns).toHaveLength(2);
    expect(report.turns!.map((t) => [t.turn, t.completed])).toEqual([
      [1, 2],
      [2, 2],
    ]);
    for (const t of report.turns!) expectOrdered(t.ttft_ms, `turn ${t.turn}`);
    // The second turn carries the first question and answer: a longer prompt.
    expect(report.turns![1].prompt_tokens_mean!).toBeGreaterThan(report.turns![0].prompt_tokens_mean! + 3);
  });

  it('prints a table without --json', async () => {
    const r = await bench(['--url', server!.url, '--requests', '1', '--max-tokens', '2']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('1 completed, 0 failed');
    expect(r.stdout).toMatch(/TTFT \(ms\)\s+\d/);
  });

  it('counts the server error answers by status and exits 1', async () => {
    const r = await bench(['--url', server!.url, '--model', 'no-such-model', '--requests', '2', '--max-tokens', '2', '--json']);
    expect(r.code).toBe(1);
    const report = JSON.parse(r.stdout) as LoadReport;
    expect(report).toMatchObject({ completed: 0, failed: 2, errors: { '404': 2 } });
    expect(r.stderr).toContain('2 of 2 requests failed');
  });

  it('refuses a non-loopback URL and bad flags with usage errors', async () => {
    const remote = await bench(['--url', 'http://192.0.2.10:8080', '--requests', '1']);
    expect(remote.code).toBe(2);
    expect(remote.stderr).toMatch(/192\.0\.2\.10 is not a loopback address.*--allow-remote/);
    for (const args of [['--requests', '0'], ['--concurrency', '1.5'], ['--max-tokens', 'x'], ['--temperature=-1'], ['--timeout-s', '0'], ['--bogus']]) {
      const r = await bench(['--url', server!.url, ...args]);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr, args.join(' ')).toContain(args[0].split('=')[0]);
    }
  });

  it('says clearly that a server is down and exits non-zero', async () => {
    // A port that was just free: nothing listens on it.
    const port = await new Promise<number>((resolve) => {
      const s = createServer();
      s.listen(0, '127.0.0.1', () => {
        const p = (s.address() as AddressInfo).port;
        s.close(() => resolve(p));
      });
    });
    const r = await bench(['--url', `http://127.0.0.1:${port}`, '--requests', '2']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`cannot reach the server at http://127\\.0\\.0\\.1:${port}/v1/models \\(ECONNREFUSED.*is it running\\?`));
    expect(r.stdout).toBe('');
  });
});
