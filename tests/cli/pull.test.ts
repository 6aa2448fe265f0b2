/**
 * `vlmesh pull` against a local stand-in for the Hugging Face Hub (loopback only): listing API,
 * resolve URLs with etag / x-linked-etag / x-repo-commit headers, a 302 to a CDN path for LFS
 * files, and Range support. Repo contents are the realvocab fixture files.
 */
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { pullCommand, resolveModelPath } from '../../edge-node/cli/pull.ts';
import { DownloadError, MODEL_FILES, pullModel, repoCacheDir } from '../../edge-node/io/hub.ts';

const fixture = fileURLToPath(new URL('../fixtures/golden/realvocab/', import.meta.url));
const COMMIT = 'a'.repeat(8) + '0123456789abcdef0123456789abcdef';
const SHARDED_COMMIT = 'b'.repeat(8) + '0123456789abcdef0123456789abcdef';

const gitSha1 = (b: Buffer) => createHash('sha1').update(`blob ${b.length}\0`).update(b).digest('hex');
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const isLfs = (name: string) => name.endsWith('.safetensors');

// The single-file repo: the fixture's model files, plus a listed file vlmesh does not need.
const tiny = new Map<string, Buffer>();
for (const f of [...MODEL_FILES, 'model.safetensors']) tiny.set(f, readFileSync(join(fixture, f)));
const weights = tiny.get('model.safetensors') as Buffer;
// The sharded repo: the same files with the weights split in two byte ranges and an index.
const sharded = new Map([...tiny].filter(([f]) => f !== 'model.safetensors'));
const half = Math.floor(weights.length / 2) + 7;
sharded.set('model-00001-of-00002.safetensors', weights.subarray(0, half));
sharded.set('model-00002-of-00002.safetensors', weights.subarray(half));
sharded.set(
  'model.safetensors.index.json',
  Buffer.from(
    JSON.stringify({
      metadata: { total_size: weights.length },
      weight_map: { a: 'model-00001-of-00002.safetensors', b: 'model-00002-of-00002.safetensors', c: 'model-00001-of-00002.safetensors' },
    }),
  ),
);
const repos: Record<string, { commit: string; files: Map<string, Buffer> }> = {
  'test/tiny': { commit: COMMIT, files: tiny },
  'test/sharded': { commit: SHARDED_COMMIT, files: sharded },
};
const bySha = new Map<string, Buffer>();
for (const r of Object.values(repos)) for (const [f, b] of r.files) if (isLfs(f)) bySha.set(sha256(b), b);

interface Logged {
  method: string;
  url: string;
  range?: string;
}
const log: Logged[] = [];
/** Server misbehaviour for the next CDN responses. */
const faults = { cutAfter: 0, corrupt: false, ignoreRange: false };

function handle(req: IncomingMessage, res: ServerResponse): void {
  const url = new URL(req.url ?? '/', 'http://x');
  log.push({ method: req.method ?? 'GET', url: url.pathname, range: req.headers.range });
  const path = decodeURIComponent(url.pathname);
  let m = /^\/api\/models\/(.+)\/revision\/([^/]+)$/.exec(path);
  if (m) {
    if (m[1] === 'test/private') {
      res.writeHead(401, { 'x-error-code': 'GatedRepo' }).end('{"error":"gated"}');
      return;
    }
    const repo = repos[m[1]];
    if (!repo || (m[2] !== 'main' && m[2] !== repo.commit)) {
      res.writeHead(404, { 'x-error-code': 'RepoNotFound' }).end('{"error":"Repository not found"}');
      return;
    }
    const siblings = [...repo.files.keys(), 'README.md', 'case_text.json'].map((rfilename) => ({ rfilename }));
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ id: m[1], sha: repo.commit, siblings }));
    return;
  }
  m = /^\/(test\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(path);
  if (m) {
    const repo = repos[m[1]];
    const body = repo?.files.get(m[3]);
    if (!repo || !body) {
      res.writeHead(404, { 'x-error-code': 'EntryNotFound' }).end();
      return;
    }
    const headers: Record<string, string> = { 'x-repo-commit': repo.commit, etag: `"${gitSha1(body)}"` };
    if (isLfs(m[3])) {
      const sha = sha256(body);
      res.writeHead(302, { ...headers, 'x-linked-etag': `"${sha}"`, 'x-linked-size': String(body.length), location: `/cdn/${sha}?sig=1` }).end();
      return;
    }
    res.writeHead(200, { ...headers, 'content-length': String(body.length) });
    res.end(req.method === 'HEAD' ? undefined : body);
    return;
  }
  m = /^\/cdn\/([0-9a-f]{64})$/.exec(path);
  const blob = m && bySha.get(m[1]);
  if (blob) {
    let start = 0;
    const range = faults.ignoreRange ? null : /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    if (range) start = Number(range[1]);
    let body = blob.subarray(start);
    if (faults.corrupt) {
      body = Buffer.from(body);
      body[body.length >> 1] ^= 0xff;
    }
    const headers: Record<string, string> = { etag: `"${m?.[1]}"`, 'content-length': String(body.length), 'accept-ranges': 'bytes' };
    if (range) headers['content-range'] = `bytes ${start}-${blob.length - 1}/${blob.length}`;
    res.writeHead(range ? 206 : 200, headers);
    if (faults.cutAfter > 0 && req.method !== 'HEAD') {
      const n = faults.cutAfter;
      faults.cutAfter = 0;
      res.write(body.subarray(0, n), () => setTimeout(() => req.socket.destroy(), 20));
      return;
    }
    res.end(req.method === 'HEAD' ? undefined : body);
    return;
  }
  res.writeHead(404).end();
}

let server: Server;
let endpoint = '';
const caches: string[] = [];
const newCache = () => {
  const d = mkdtempSync(join(tmpdir(), 'vlmesh-pull-'));
  caches.push(d);
  return d;
};

beforeAll(async () => {
  server = createServer(handle);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
  for (const d of caches) rmSync(d, { recursive: true, force: true });
});
beforeEach(() => {
  log.length = 0;
  faults.cutAfter = 0;
  faults.corrupt = false;
  faults.ignoreRange = false;
});

const pull = (repo: string, cacheDir: string) => pullModel({ repo, endpoint, cacheDir, retryDelayMs: 5 });

function expectSnapshot(dir: string, files: Map<string, Buffer>): void {
  for (const [f, b] of files) expect(readFileSync(join(dir, f)).equals(b), f).toBe(true);
  expect(readdirSync(dir).sort()).toEqual([...files.keys()].sort());
}

describe('vlmesh pull (local hub stand-in)', () => {
  it('pulls a repo into the hub cache layout with byte-identical files, then reuses it without requests', async () => {
    const cache = newCache();
    const r = await pull('test/tiny', cache);
    const repoDir = repoCacheDir(cache, 'test/tiny');
    expect(repoDir).toBe(join(cache, 'models--test--tiny'));
    expect(r.snapshotDir).toBe(join(repoDir, 'snapshots', COMMIT));
    expect(r.commit).toBe(COMMIT);
    expect(readFileSync(join(repoDir, 'refs', 'main'), 'utf8')).toBe(COMMIT);
    expectSnapshot(r.snapshotDir, tiny);
    expect(r.downloaded.sort()).toEqual([...tiny.keys()].sort());
    expect(lstatSync(join(r.snapshotDir, 'model.safetensors')).isSymbolicLink()).toBe(true);
    expect(existsSync(join(repoDir, 'blobs', sha256(weights)))).toBe(true);
    expect(existsSync(join(repoDir, 'blobs', gitSha1(tiny.get('config.json') as Buffer)))).toBe(true);
    // The weights went through the CDN redirect; files not needed were never requested.
    expect(log.some((l) => l.url.startsWith('/cdn/') && l.method === 'GET')).toBe(true);
    expect(log.some((l) => l.url.includes('case_text.json') || l.url.includes('README.md'))).toBe(false);

    log.length = 0;
    const again = await pull('test/tiny', cache);
    expect(again).toMatchObject({ snapshotDir: r.snapshotDir, cached: true, downloaded: [] });
    expect(log).toEqual([]);
  });

  it('resumes an interrupted download with a Range request', async () => {
    const cache = newCache();
    const cut = 3 * 2 ** 20 + 123;
    faults.cutAfter = cut;
    const r = await pull('test/tiny', cache);
    const cdn = log.filter((l) => l.url.startsWith('/cdn/') && l.method === 'GET');
    expect(cdn.length).toBe(2);
    expect(cdn[0].range).toBeUndefined();
    const start = Number(/^bytes=(\d+)-$/.exec(cdn[1].range ?? '')?.[1]);
    expect(start).toBeGreaterThan(0);
    expect(start).toBeLessThanOrEqual(cut);
    expectSnapshot(r.snapshotDir, tiny);
    expect(readdirSync(join(cache, 'models--test--tiny', 'blobs')).some((f) => f.endsWith('.incomplete'))).toBe(false);
  });

  it('continues a partial file left by an earlier run, and restarts when the server ignores the range', async () => {
    for (const ignoreRange of [false, true]) {
      const cache = newCache();
      const blobs = join(cache, 'models--test--tiny', 'blobs');
      mkdirSync(blobs, { recursive: true });
      writeFileSync(join(blobs, `${sha256(weights)}.incomplete`), weights.subarray(0, 1000));
      faults.ignoreRange = ignoreRange;
      log.length = 0;
      const r = await pull('test/tiny', cache);
      const cdn = log.filter((l) => l.url.startsWith('/cdn/') && l.method === 'GET');
      expect(cdn.map((l) => l.range)).toEqual(['bytes=1000-']);
      expectSnapshot(r.snapshotDir, tiny);
    }
  });

  it('rejects a corrupted body with a typed error naming the file and leaves no snapshot files', async () => {
    const cache = newCache();
    faults.corrupt = true;
    const err = await pull('test/tiny', cache).catch((e) => e);
    expect(err).toBeInstanceOf(DownloadError);
    expect(err.code).toBe('DOWNLOAD_CHECKSUM_MISMATCH');
    expect(err.file).toBe('model.safetensors');
    expect(err.message).toContain('model.safetensors');
    const repoDir = join(cache, 'models--test--tiny');
    const snaps = join(repoDir, 'snapshots');
    expect(existsSync(snaps) ? readdirSync(snaps, { recursive: true }) : []).toEqual([]);
    expect(readdirSync(join(repoDir, 'blobs')).some((f) => f.endsWith('.incomplete'))).toBe(false);
    // A later, healthy pull completes (the small files are already in blobs/).
    faults.corrupt = false;
    log.length = 0;
    const r = await pull('test/tiny', cache);
    expectSnapshot(r.snapshotDir, tiny);
    expect(r.downloaded).toEqual(['model.safetensors']);
  });

  it('explains a missing repo and a private one', async () => {
    const cache = newCache();
    const missing = await pull('test/nope', cache).catch((e) => e);
    expect(missing).toBeInstanceOf(DownloadError);
    expect(missing.code).toBe('HUB_NOT_FOUND');
    expect(missing.message).toContain('no such repo / revision / file');
    expect(missing.message).toContain('test/nope');
    const priv = await pull('test/private', cache).catch((e) => e);
    expect(priv.code).toBe('HUB_AUTH');
    expect(priv.message).toContain('--token');
    expect(priv.message).toContain('HF_TOKEN');
  });

  it('retries a server that is down and names the URL when it gives up', async () => {
    const err = await pullModel({ repo: 'test/tiny', endpoint: 'http://127.0.0.1:1', cacheDir: newCache(), retries: 1, retryDelayMs: 1 }).catch((e) => e);
    expect(err).toBeInstanceOf(DownloadError);
    expect(err.code).toBe('HUB_NETWORK');
    expect(err.message).toContain('http://127.0.0.1:1/api/models/test/tiny/revision/main');
  });

  it('downloads every shard named by a safetensors index', async () => {
    const cache = newCache();
    const r = await pull('test/sharded', cache);
    expectSnapshot(r.snapshotDir, sharded);
    expect(Buffer.concat([readFileSync(join(r.snapshotDir, 'model-00001-of-00002.safetensors')), readFileSync(join(r.snapshotDir, 'model-00002-of-00002.safetensors'))]).equals(weights)).toBe(true);
    log.length = 0;
    expect((await pull('test/sharded', cache)).cached).toBe(true);
    expect(log).toEqual([]);
  });

  it('pullCommand prints the snapshot directory; resolveModelPath uses local dirs and the cache', async () => {
    const cache = newCache();
    const write = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    const errWrite = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      expect(await pullCommand(['test/tiny', '--endpoint', endpoint, '--cache-dir', cache])).toBe(0);
      const snap = join(cache, 'models--test--tiny', 'snapshots', COMMIT);
      expect(write.mock.calls.map((c) => String(c[0])).join('')).toBe(`${snap}\n`);
      log.length = 0;
      expect(await resolveModelPath('test/tiny', { endpoint, cacheDir: cache })).toBe(snap);
      expect(log).toEqual([]);
      expect(await resolveModelPath(fixture, { endpoint, cacheDir: cache })).toBe(fixture);
      await expect(pullCommand(['not a repo'])).rejects.toThrow(/repo id/);
    } finally {
      write.mockRestore();
      errWrite.mockRestore();
    }
  });
});
