/**
 * The edge node's non-API HTTP surface: the model files for in-browser engines (`/models/…`,
 * ranges, validators, nothing outside the allowlist), the web app routes and their caching, the
 * donor list of `/v1/mesh`, and the `--kiosk` flags of `vlmesh serve`.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import { type AddressInfo, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer } from '../../edge-node/server/http.ts';
import { DonorRegistry } from '../../edge-node/server/mesh-registry.ts';
import { isModelFile } from '../../edge-node/server/model-files.ts';
import { startServe, stopServe } from '../support/serve.ts';

const modelDir = fileURLToPath(new URL('../fixtures/golden/realvocab', import.meta.url));
const bin = fileURLToPath(new URL('../../edge-node/bin/vlmesh.mjs', import.meta.url));

let server: Server;
let base = '';
let webDir = '';
let keyed: Server;
let keyedBase = '';
let now = 1_700_000_000_000;

async function listen(o: Parameters<typeof startServer>[0]): Promise<[Server, string]> {
  const s = await startServer({ host: '127.0.0.1', port: 0, ...o });
  return [s, `http://127.0.0.1:${(s.address() as AddressInfo).port}`];
}

const close = (s: Server) =>
  new Promise((r) => {
    s.closeAllConnections();
    s.close(r);
  });

beforeAll(async () => {
  webDir = mkdtempSync(join(tmpdir(), 'vlmesh-web-'));
  mkdirSync(join(webDir, 'assets'));
  writeFileSync(join(webDir, 'index.html'), '<!doctype html><title>app</title><div id="app"></div>');
  writeFileSync(join(webDir, 'assets', 'main-abc123.js'), 'console.log(1)');
  [server, base] = await listen({
    doctor: () => Promise.reject(new Error('unused')),
    webDir,
    modelFiles: { dir: modelDir, name: 'org/tiny-model' },
    kioskIdleSeconds: 45,
    donors: new DonorRegistry({ now: () => now }),
  });
  [keyed, keyedBase] = await listen({
    doctor: () => Promise.reject(new Error('unused')),
    webDir: join(webDir, 'missing'),
    api: { engine: null, apiKeys: ['sekret'] },
  });
});

afterAll(async () => {
  await close(server);
  await close(keyed);
  rmSync(webDir, { recursive: true, force: true });
});

describe('/models/<name>/<file>', () => {
  const file = (f: string) => `${base}/models/org/tiny-model/${f}`;
  const weights = join(modelDir, 'model.safetensors');
  const size = statSync(weights).size;

  it('serves an allowed file whole, with validators and the right type', async () => {
    const res = await fetch(file('config.json'));
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/json');
    expect(res.headers.get('accept-ranges')).toBe('bytes');
    expect(res.headers.get('etag')).toMatch(/^"[0-9a-f]+-[0-9a-f]+"$/);
    expect(res.headers.get('last-modified')).toBeTruthy();
    expect(await res.text()).toBe(readFileSync(join(modelDir, 'config.json'), 'utf8'));
    const head = await fetch(file('model.safetensors'), { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(Number(head.headers.get('content-length'))).toBe(size);
    expect(head.headers.get('content-type')).toBe('application/octet-stream');
  });

  it('answers byte ranges with 206 and Content-Range (start-end, open end, suffix)', async () => {
    const bytes = readFileSync(weights);
    const cases: [string, number, number][] = [
      ['bytes=0-7', 0, 7],
      ['bytes=100-', 100, size - 1],
      ['bytes=-16', size - 16, size - 1],
      [`bytes=${size - 4}-${size + 1000}`, size - 4, size - 1],
    ];
    for (const [range, start, end] of cases) {
      const res = await fetch(file('model.safetensors'), { headers: { range } });
      expect(res.status, range).toBe(206);
      expect(res.headers.get('content-range')).toBe(`bytes ${start}-${end}/${size}`);
      const got = new Uint8Array(await res.arrayBuffer());
      expect(got.length).toBe(end - start + 1);
      expect(Buffer.from(got).equals(bytes.subarray(start, end + 1)), range).toBe(true);
    }
  });

  it('refuses unsatisfiable ranges with 416; a stale If-Range gets the whole file', async () => {
    const res = await fetch(file('model.safetensors'), { headers: { range: `bytes=${size}-` } });
    expect(res.status).toBe(416);
    expect(res.headers.get('content-range')).toBe(`bytes */${size}`);
    const stale = await fetch(file('config.json'), { headers: { range: 'bytes=0-3', 'if-range': '"stale"' } });
    expect(stale.status).toBe(200);
    const etag = (await fetch(file('config.json'), { method: 'HEAD' })).headers.get('etag')!;
    const fresh = await fetch(file('config.json'), { headers: { range: 'bytes=0-3', 'if-range': etag } });
    expect(fresh.status).toBe(206);
    expect(await fresh.text()).toBe('{\n  ');
  });

  it('answers a matching If-None-Match with 304 and no body', async () => {
    const etag = (await fetch(file('tokenizer_config.json'))).headers.get('etag')!;
    const res = await fetch(file('tokenizer_config.json'), { headers: { 'if-none-match': etag } });
    expect(res.status).toBe(304);
    expect(await res.text()).toBe('');
  });

  it('publishes only model files: other names, traversal, encoded slashes and the wrong model are 404', async () => {
    for (const p of [
      'case_text.json', // a file of the directory, but not a model file
      '../config.json',
      '..%2Fconfig.json',
      '%2e%2e/%2e%2e/%2e%2e/package.json',
      'sub%2Fconfig.json',
      'config.json%00.png',
      '.config.json',
      'tokenizer.json/../case_text.json',
    ]) {
      const res = await fetch(`${base}/models/org/tiny-model/${p}`);
      expect(res.status, p).toBe(404);
      const body = await res.text();
      expect(body, p).not.toContain('input_ids');
    }
    expect((await fetch(`${base}/models/other/config.json`)).status).toBe(404);
    expect((await fetch(`${base}/models/org/config.json`)).status).toBe(404);
    // Raw traversal outside the URL parser's normalisation.
    const raw = await new Promise<number>((resolve, reject) => {
      const sock = connect(Number(new URL(base).port), '127.0.0.1', () => sock.write('GET /models/org/tiny-model/../../../../etc/passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'));
      let data = '';
      sock.on('data', (d) => (data += d));
      sock.on('end', () => resolve(Number(data.split(' ')[1])));
      sock.on('error', reject);
    });
    expect(raw).toBe(404);
  });

  it('the allowlist: what a Hugging Face model directory holds, nothing else', () => {
    for (const ok of [
      'config.json',
      'model.safetensors',
      'model-00001-of-00004.safetensors',
      'model.safetensors.index.json',
      'tokenizer.json',
      'tokenizer_config.json',
      'chat_template.json',
      'chat_template.jinja',
      'preprocessor_config.json',
      'video_preprocessor_config.json',
      'generation_config.json',
    ]) {
      expect(isModelFile(ok), ok).toBe(true);
    }
    for (const bad of ['README.md', 'case_image.json', '.env', 'x/config.json', '..', 'merges.txt', 'config.json.bak', 'pytorch_model.bin']) {
      expect(isModelFile(bad), bad).toBe(false);
    }
  });
});

describe('the web app routes', () => {
  it('serves index.html at /, /donate and /kiosk (no-cache) and hashed assets as immutable', async () => {
    for (const p of ['/', '/donate', '/kiosk', '/kiosk/']) {
      const res = await fetch(`${base}${p}`);
      expect(res.status, p).toBe(200);
      expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8');
      expect(res.headers.get('cache-control')).toBe('no-cache');
      expect(await res.text()).toContain('<title>app</title>');
    }
    const js = await fetch(`${base}/assets/main-abc123.js`);
    expect(js.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect(js.headers.get('cache-control')).toContain('immutable');
    expect((await fetch(`${base}/assets/nope.js`)).status).toBe(404);
    expect((await fetch(`${base}/%2e%2e/package.json`)).status).toBe(404);
  });

  it('moves the doctor page to /doctor, and falls back to it at / when the app is not built', async () => {
    const doctor = await fetch(`${base}/doctor`);
    expect(await doctor.text()).toContain('vlmesh doctor');
    const unbuilt = await fetch(`${keyedBase}/`);
    expect(unbuilt.status).toBe(200);
    expect(await unbuilt.text()).toContain('vlmesh doctor');
    const donate = await fetch(`${keyedBase}/donate`);
    expect(donate.status).toBe(503);
    expect(await donate.text()).toContain('npm run build:web');
  });

  it('tells the page about the node: kiosk, idle time, the model and where its files are', async () => {
    expect(await (await fetch(`${base}/api/web-config`)).json()).toEqual({
      kiosk: false,
      kioskIdleSeconds: 45,
      model: 'org/tiny-model',
      modelUrl: '/models/org/tiny-model/',
    });
    expect(await (await fetch(`${base}/kiosk/config`)).json()).toEqual({ idleSeconds: 45 });
    expect(await (await fetch(`${keyedBase}/api/web-config`)).json()).toMatchObject({ model: null, modelUrl: null });
  });
});

describe('/v1/mesh donors', () => {
  const offer = {
    adapter: { vendor: 'google', architecture: 'swiftshader', device: '', description: 'SwiftShader', isFallbackAdapter: true },
    features: ['timestamp-query'],
    memory: { estimateBytes: 268435456, maxBufferSize: 268435456, maxStorageBufferBindingSize: 134217728 },
    gflops: 3.5,
  };
  const post = (path: string, body: unknown, b = base, headers: Record<string, string> = {}) =>
    fetch(`${b}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });

  it('registers, lists with last-seen, heartbeats, expires after three missed beats, unregisters', async () => {
    const res = await post('/v1/mesh/donors', offer);
    expect(res.status).toBe(201);
    const { id, heartbeatIntervalS } = (await res.json()) as { id: string; heartbeatIntervalS: number };
    expect(heartbeatIntervalS).toBe(10);
    let mesh = (await (await fetch(`${base}/v1/mesh`)).json()) as { peers: Record<string, unknown>[] };
    expect(mesh.peers).toEqual([{ id, kind: 'browser-donor', ...offer, registeredAt: new Date(now).toISOString(), lastSeen: new Date(now).toISOString() }]);

    now += 25_000;
    const beat = await post(`/v1/mesh/donors/${id}/heartbeat`, {});
    expect(beat.status).toBe(200);
    mesh = await (await fetch(`${base}/v1/mesh`)).json();
    expect(mesh.peers[0]!.lastSeen).toBe(new Date(now).toISOString());

    now += 31_000; // three intervals without a beat
    mesh = await (await fetch(`${base}/v1/mesh`)).json();
    expect(mesh.peers).toEqual([]);
    expect((await post(`/v1/mesh/donors/${id}/heartbeat`, {})).status).toBe(404);

    const again = (await (await post('/v1/mesh/donors', offer)).json()) as { id: string };
    expect((await fetch(`${base}/v1/mesh/donors/${again.id}`, { method: 'DELETE' })).status).toBe(204);
    expect(((await (await fetch(`${base}/v1/mesh`)).json()) as { peers: unknown[] }).peers).toEqual([]);
  });

  it('refuses malformed registrations with the OpenAI error body naming the field', async () => {
    const bad = await post('/v1/mesh/donors', { ...offer, gflops: 'fast' });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ error: { param: 'gflops', code: 'invalid_value', type: 'invalid_request_error' } });
    const notJson = await fetch(`${base}/v1/mesh/donors`, { method: 'POST', body: '{' });
    expect(notJson.status).toBe(400);
    expect((await fetch(`${base}/v1/mesh`, { method: 'POST' })).status).toBe(405);
  });

  it('needs the API key when the node has keys', async () => {
    expect((await fetch(`${keyedBase}/v1/mesh`)).status).toBe(401);
    expect((await post('/v1/mesh/donors', offer, keyedBase)).status).toBe(401);
    const ok = await post('/v1/mesh/donors', offer, keyedBase, { authorization: 'Bearer sekret' });
    expect(ok.status).toBe(201);
    const list = await fetch(`${keyedBase}/v1/mesh`, { headers: { authorization: 'Bearer sekret' } });
    expect(((await list.json()) as { peers: unknown[] }).peers).toHaveLength(1);
  });
});

describe('vlmesh serve --kiosk', () => {
  it('serves the kiosk configuration from --kiosk-idle-s', async () => {
    const s = await startServe(['--kiosk', '--kiosk-idle-s', '7']);
    try {
      expect(await (await fetch(`${s.url}kiosk/config`)).json()).toEqual({ idleSeconds: 7 });
      expect(await (await fetch(`${s.url}api/web-config`)).json()).toMatchObject({ kiosk: true, kioskIdleSeconds: 7 });
    } finally {
      await stopServe(s.p);
    }
  });

  it('refuses --kiosk-idle-s without --kiosk, and a bad value', async () => {
    const run = (args: string[]) =>
      new Promise<{ code: number; stderr: string }>((resolve) => {
        const p = spawn(process.execPath, [bin, 'serve', '--port', '0', ...args]);
        let stderr = '';
        p.stderr.on('data', (d) => (stderr += d));
        p.on('close', (code) => resolve({ code: code ?? -1, stderr }));
      });
    const a = await run(['--kiosk-idle-s', '5']);
    expect(a.code).toBe(2);
    expect(a.stderr).toContain('--kiosk-idle-s needs --kiosk');
    const b = await run(['--kiosk', '--kiosk-idle-s', '0']);
    expect(b.code).toBe(2);
    expect(b.stderr).toContain('--kiosk-idle-s must be a positive number');
  });
});
