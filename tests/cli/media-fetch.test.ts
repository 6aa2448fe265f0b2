/**
 * Remote media for the API: `fetchMedia` against a local HTTP server on 127.0.0.1 (refused by
 * default as loopback, allowed by host or CIDR; redirects vetted at every hop; size, time and
 * content-type limits), then `vlmesh serve` end to end: an `http:` image_url gives the same greedy
 * answer as the same image inline, is a 400 `media_fetch_forbidden` without `--media-allow-host`,
 * and a `video_url` (data: and http:) is answered. Only loopback traffic.
 */
import { type ChildProcess, execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServe, stopServe } from '../support/serve.ts';
import {
  fetchMedia,
  type FetchMediaOptions,
  MediaFetchFailedError,
  MediaFetchForbiddenError,
  MediaTimeoutError,
  MediaTooLargeError,
  MediaTypeError,
} from '../../edge-node/server/media-fetch.ts';

const golden = fileURLToPath(new URL('../fixtures/golden/', import.meta.url));
const png = readFileSync(`${golden}e2e/img_a_256x320.png`);
const gold = JSON.parse(readFileSync(`${golden}e2e/case_one_image.json`, 'utf8'));
const hasFfmpeg = ['ffmpeg', 'ffprobe'].every((t) => spawnSync(t, ['-version'], { stdio: 'ignore' }).status === 0);

/** The local media server: routes by path. */
let media: Server;
let base = '';
let port = 0;
let video: Buffer = Buffer.alloc(0);
const open = new Set<ServerResponse>();

function route(path: string, res: ServerResponse): void {
  open.add(res);
  res.on('close', () => open.delete(res));
  switch (path) {
    case '/img.png':
      res.writeHead(200, { 'content-type': 'image/png', 'content-length': png.length });
      res.end(png);
      return;
    case '/clip.mp4':
      res.writeHead(200, { 'content-type': 'video/mp4' });
      res.end(video);
      return;
    case '/page.html':
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end('<html></html>');
      return;
    case '/to-img':
      res.writeHead(302, { location: '/img.png' });
      res.end();
      return;
    case '/to-v6-loopback':
      res.writeHead(302, { location: `http://[::1]:${port}/img.png` });
      res.end();
      return;
    case '/to-metadata':
      res.writeHead(301, { location: 'http://169.254.169.254/latest/meta-data/' });
      res.end();
      return;
    case '/loop':
      res.writeHead(302, { location: '/loop' });
      res.end();
      return;
    case '/declared-huge':
      res.writeHead(200, { 'content-type': 'image/png', 'content-length': 10_000_000 });
      res.write(png.subarray(0, 100));
      return; // never ends: the client must not wait for it
    case '/endless': {
      // No content-length: the cap must cut the stream.
      res.writeHead(200, { 'content-type': 'image/png' });
      const chunk = Buffer.alloc(16 * 1024, 7);
      let sent = 0;
      const pump = () => {
        while (!res.destroyed && sent < 64 * 2 ** 20 && res.write(chunk)) sent += chunk.length;
        if (!res.destroyed && sent < 64 * 2 ** 20) res.once('drain', pump);
        else res.end();
      };
      pump();
      return;
    }
    case '/slow':
      res.writeHead(200, { 'content-type': 'image/png' });
      res.write(png.subarray(0, 10)); // then nothing
      return;
    case '/silent':
      return; // no headers at all
    case '/missing':
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('no');
      return;
    default:
      res.writeHead(500);
      res.end();
  }
}

beforeAll(async () => {
  media = createServer((req, res) => route(new URL(req.url ?? '/', 'http://x').pathname, res));
  await new Promise<void>((r) => media.listen(0, '127.0.0.1', r));
  port = (media.address() as AddressInfo).port;
  base = `http://127.0.0.1:${port}`;
});
afterAll(async () => {
  for (const r of open) r.destroy();
  media.closeAllConnections();
  await new Promise((r) => media.close(r));
});

describe('fetchMedia', () => {
  const opts = (over: Partial<FetchMediaOptions> = {}): FetchMediaOptions => ({
    timeoutMs: 5000,
    maxBytes: 1 << 20,
    allowedContentTypes: ['image/*'],
    ...over,
  });
  const allowed = (over: Partial<FetchMediaOptions> = {}) => opts({ allowCidrs: ['127.0.0.1/32'], ...over });

  it('refuses loopback by default, in every spelling', async () => {
    for (const url of [
      `${base}/img.png`,
      `http://127.1:${port}/img.png`,
      `http://0x7f000001:${port}/img.png`,
      `http://2130706433:${port}/img.png`,
      `http://0177.0.0.1:${port}/img.png`,
      `http://[::1]:${port}/img.png`,
      `http://[::ffff:127.0.0.1]:${port}/img.png`,
      `http://localhost:${port}/img.png`,
      `http://0.0.0.0:${port}/img.png`,
    ]) {
      const e = await fetchMedia(url, opts()).catch((x) => x);
      expect(e, url).toBeInstanceOf(MediaFetchForbiddenError);
      expect(e.apiCode).toBe('media_fetch_forbidden');
    }
  });

  it('refuses other schemes', async () => {
    for (const url of ['file:///etc/passwd', 'ftp://example.com/x.png', 'gopher://127.0.0.1/']) {
      await expect(fetchMedia(url, allowed())).rejects.toBeInstanceOf(MediaFetchForbiddenError);
    }
  });

  it('fetches when the address or host is allow-listed', async () => {
    for (const o of [allowed(), opts({ allowHosts: ['127.0.0.1'] }), opts({ allowCidrs: ['127.0.0.0/8'] })]) {
      const got = await fetchMedia(`${base}/img.png`, o);
      expect(Buffer.from(got.bytes).equals(png)).toBe(true);
      expect(got.contentType).toBe('image/png');
    }
    // Another loopback address is not in 127.0.0.1/32.
    await expect(fetchMedia(`http://127.0.0.2:${port}/img.png`, allowed())).rejects.toBeInstanceOf(MediaFetchForbiddenError);
  });

  it('connects to the vetted address of an allowed name, with one lookup per hop', async () => {
    // "media.test" exists only in this resolver: the socket must use the vetted address.
    const asked: string[] = [];
    const resolve = async (h: string) => {
      asked.push(h);
      return ['127.0.0.1'];
    };
    const got = await fetchMedia(`http://media.test:${port}/to-img`, opts({ allowHosts: ['media.test'], resolve }));
    expect(Buffer.from(got.bytes).equals(png)).toBe(true);
    expect(asked).toEqual(['media.test', 'media.test']);
    // A name with one inside address among public ones is refused as a whole.
    await expect(fetchMedia(`http://mixed.test:${port}/img.png`, opts({ resolve: async () => ['93.184.216.34', '10.0.0.5'] }))).rejects.toBeInstanceOf(
      MediaFetchForbiddenError,
    );
  });

  it('vets every redirect hop and follows at most 3', async () => {
    const ok = await fetchMedia(`${base}/to-img`, allowed());
    expect(ok.bytes.length).toBe(png.length);
    await expect(fetchMedia(`${base}/to-v6-loopback`, allowed())).rejects.toBeInstanceOf(MediaFetchForbiddenError);
    const e = await fetchMedia(`${base}/to-metadata`, allowed()).catch((x) => x);
    expect(e).toBeInstanceOf(MediaFetchForbiddenError);
    expect(e.message).toContain('169.254.169.254');
    expect(e.message).toContain('link-local');
    const loop = await fetchMedia(`${base}/loop`, allowed()).catch((x) => x);
    expect(loop).toBeInstanceOf(MediaFetchFailedError);
    expect(loop.message).toContain('more than 3 redirects');
  });

  it('aborts bodies over the byte cap, declared or streamed', async () => {
    const t0 = performance.now();
    const e1 = await fetchMedia(`${base}/declared-huge`, allowed({ maxBytes: 1000 })).catch((x) => x);
    expect(e1).toBeInstanceOf(MediaTooLargeError);
    expect(e1.apiCode).toBe('media_too_large');
    const e2 = await fetchMedia(`${base}/endless`, allowed({ maxBytes: 100_000 })).catch((x) => x);
    expect(e2).toBeInstanceOf(MediaTooLargeError);
    expect(performance.now() - t0).toBeLessThan(3000);
    await expect(fetchMedia(`${base}/img.png`, allowed({ maxBytes: png.length - 1 }))).rejects.toBeInstanceOf(MediaTooLargeError);
  });

  it('times out the whole request', async () => {
    for (const path of ['/slow', '/silent']) {
      const t0 = performance.now();
      const e = await fetchMedia(`${base}${path}`, allowed({ timeoutMs: 300 })).catch((x) => x);
      expect(e, path).toBeInstanceOf(MediaTimeoutError);
      expect(e.apiCode).toBe('media_timeout');
      expect(performance.now() - t0).toBeLessThan(2000);
    }
  });

  it('refuses content-types outside the list, and error statuses', async () => {
    const e = await fetchMedia(`${base}/page.html`, allowed()).catch((x) => x);
    expect(e).toBeInstanceOf(MediaTypeError);
    expect(e.apiCode).toBe('unsupported_media_type');
    expect(e.message).toContain('text/html');
    await expect(fetchMedia(`${base}/img.png`, allowed({ allowedContentTypes: ['video/*'] }))).rejects.toBeInstanceOf(MediaTypeError);
    const missing = await fetchMedia(`${base}/missing`, allowed()).catch((x) => x);
    expect(missing).toBeInstanceOf(MediaFetchFailedError);
    expect(missing.message).toContain('404');
  });
});



describe('vlmesh serve with remote media', () => {
  let allow: { p: ChildProcess; url: string } | undefined;
  let plain: { p: ChildProcess; url: string } | undefined;
  let dir = '';
  const model = `${golden}realvocab`;
  const chat = (server: { url: string }, content: unknown[], maxTokens = 8) =>
    fetch(`${server.url}v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'realvocab', messages: [{ role: 'user', content }], temperature: 0, max_tokens: maxTokens }),
    });
  const imagePart = (url: string) => [
    { type: 'image_url', image_url: { url } },
    { type: 'text', text: 'Describe this image.' },
  ];

  beforeAll(async () => {
    if (hasFfmpeg) {
      dir = mkdtempSync(join(tmpdir(), 'vlmesh-media-'));
      const file = join(dir, 'clip.mp4');
      // 1 s at 4 fps, 32x32: 4 frames, the processor's minimum.
      execFileSync('ffmpeg', ['-v', 'error', '-f', 'lavfi', '-i', 'testsrc=size=32x32:rate=4', '-t', '1', '-pix_fmt', 'yuv420p', file]);
      video = readFileSync(file);
    }
    [allow, plain] = await Promise.all([
      startServe(['--model', model, '--dtype', 'f32', '--media-allow-host', '127.0.0.1', '--media-timeout-s', '5']),
      startServe(['--model', model, '--dtype', 'f32']),
    ]);
  }, 60_000);
  afterAll(async () => {
    await Promise.all([stopServe(allow?.p), stopServe(plain?.p)]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('answers an http: image like the same image inline (greedy)', async () => {
    const inline = await chat(allow!, imagePart(`data:image/png;base64,${png.toString('base64')}`));
    expect(inline.status).toBe(200);
    const remote = await chat(allow!, imagePart(`${base}/img.png`));
    expect(remote.status).toBe(200);
    const a = await inline.json();
    const b = await remote.json();
    expect(b.choices[0].message.content).toBe(a.choices[0].message.content);
    expect(b.choices[0].message.content).toBe(gold.generated_text_skip_special);
    expect(b.usage).toEqual(a.usage);
  }, 60_000);

  it('answers 400 media_fetch_forbidden without --media-allow-host, and other fetch failures as 400s', async () => {
    const r = await chat(plain!, imagePart(`${base}/img.png`), 2);
    expect(r.status).toBe(400);
    const j = await r.json();
    expect(j.error.code).toBe('media_fetch_forbidden');
    expect(j.error.param).toBe('messages[0].content[0].image_url.url');
    expect(j.error.message).toContain('loopback');
    const html = await chat(allow!, imagePart(`${base}/page.html`), 2);
    expect(html.status).toBe(400);
    expect((await html.json()).error.code).toBe('unsupported_media_type');
    const meta = await chat(allow!, imagePart(`${base}/to-metadata`), 2);
    expect((await meta.json()).error.code).toBe('media_fetch_forbidden');
  }, 30_000);

  it.skipIf(!hasFfmpeg)('answers a video_url, inline and fetched', async () => {
    const part = (url: string) => [
      { type: 'video_url', video_url: { url } },
      { type: 'text', text: 'What happens in this video?' },
    ];
    const inline = await chat(allow!, part(`data:video/mp4;base64,${video.toString('base64')}`), 4);
    expect(inline.status).toBe(200);
    const a = await inline.json();
    expect(typeof a.choices[0].message.content).toBe('string');
    expect(a.choices[0].message.content.length).toBeGreaterThan(0);
    expect(a.usage.completion_tokens).toBe(4);
    const remote = await chat(allow!, part(`${base}/clip.mp4`), 4);
    expect(remote.status).toBe(200);
    expect((await remote.json()).choices[0].message.content).toBe(a.choices[0].message.content);
    // Not a video: a 400, and one video per request.
    const junk = await chat(allow!, part(`data:video/mp4;base64,${Buffer.from('not a video').toString('base64')}`), 2);
    expect(junk.status).toBe(400);
    expect((await junk.json()).error.code).toBe('invalid_video');
  }, 60_000);
});
