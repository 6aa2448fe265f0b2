/**
 * Two edge nodes share the vision cache through a real `redis-server` on loopback: an image that
 * node A encoded is not encoded again by node B (B's metrics: a cache hit, no tower run), the
 * answers are the same, and a repeated image on one node skips the tower (in-process cache).
 * Without redis-server on PATH this is skipped, except with CI=true, where it fails.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisVisionCache } from '../../edge-node/io/redis-vision-cache.ts';
import { parsePrometheus, sampleValue } from '../support/prometheus-parse.ts';
import { type Served, startServe, stopServe } from '../support/serve.ts';

const golden = fileURLToPath(new URL('../fixtures/golden/', import.meta.url));
const ci = process.env.CI === 'true' || process.env.CI === '1';
const hasRedis = spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status === 0;
if (!hasRedis && ci) throw new Error('CI=true and redis-server is not on PATH (Debian/Ubuntu: apt-get install redis-server)');
if (!hasRedis) console.warn('skipping the vision-cache fleet test: redis-server is not on PATH (apt-get install redis-server)');

const image = `data:image/png;base64,${readFileSync(`${golden}e2e/img_a_256x320.png`).toString('base64')}`;
const body = JSON.stringify({
  model: 'tiny',
  temperature: 0,
  max_tokens: 4,
  messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: image } }, { type: 'text', text: 'What is it?' }] }],
});

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

async function chat(s: Served): Promise<string> {
  const r = await fetch(`${s.url}v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
  expect(r.status).toBe(200);
  return (await r.json()).choices[0].message.content;
}

async function metric(s: Served, name: string): Promise<number> {
  return sampleValue(parsePrometheus(await (await fetch(`${s.url}metrics`)).text()), name);
}

describe.skipIf(!hasRedis)('vision cache shared through Redis', () => {
  let redis: ChildProcess | undefined;
  let dir = '';
  let a: Served | undefined;
  let b: Served | undefined;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'vlmesh-redis-'));
    const port = await freePort();
    redis = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: 'ignore' });
    const url = `redis://127.0.0.1:${port}`;
    const probe = new RedisVisionCache({ url, retryDelayMs: 20 });
    const deadline = Date.now() + 5000;
    while (!(await probe.ping())) {
      if (Date.now() > deadline) throw new Error('redis-server did not answer PING within 5 s');
      await new Promise((r) => setTimeout(r, 50));
    }
    await probe.close();
    const args = ['--model', `${golden}realvocab`, '--dtype', 'f32', '--served-model-name', 'tiny', '--redis-url', url];
    a = await startServe(args);
    b = await startServe(args);
  }, 60_000);
  afterAll(async () => {
    await stopServe(a?.p);
    await stopServe(b?.p);
    redis?.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  it('node B reuses the features node A computed, and answers the same', async () => {
    const fromA = await chat(a!);
    expect(await metric(a!, 'vlmesh:vision_encoder_images_total')).toBe(1);
    expect(await metric(a!, 'vlmesh:vision_cache_misses_total')).toBe(1);
    const fromB = await chat(b!);
    expect(fromB).toBe(fromA);
    expect(await metric(b!, 'vlmesh:vision_cache_hits_total')).toBe(1);
    expect(await metric(b!, 'vlmesh:vision_encoder_images_total')).toBe(0);
    // The same image again on A: a hit, the tower still ran once.
    expect(await chat(a!)).toBe(fromA);
    expect(await metric(a!, 'vlmesh:vision_cache_hits_total')).toBe(1);
    expect(await metric(a!, 'vlmesh:vision_encoder_images_total')).toBe(1);
  }, 120_000);
});
