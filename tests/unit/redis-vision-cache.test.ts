/**
 * The Redis vision cache against a real `redis-server` started here on loopback (no persistence,
 * a temporary directory), including what happens when it dies and comes back. Without
 * redis-server on PATH the server tests are skipped, except with CI=true, where that fails.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, connect as netConnect, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseRedisUrl, RedisCommandError, RedisUrlError, RedisVisionCache } from '../../edge-node/io/redis-vision-cache.ts';
import { type VisionEmbedding, VisionCacheDecodeError, visionCacheKey } from '../../shared/engine/vision-cache.ts';
import { Rng } from '../support/random.ts';

const ci = process.env.CI === 'true' || process.env.CI === '1';
const hasRedis = spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status === 0;
const INSTALL_HELP = 'redis-server is not on PATH (Debian/Ubuntu: apt-get install redis-server)';
if (!hasRedis && !ci) console.warn(`skipping the Redis vision cache tests: ${INSTALL_HELP}`);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function embedding(tokens: number, hidden: number, levels: number, seed: number): VisionEmbedding {
  const rng = new Rng(seed);
  const e = { tokens, hidden, merged: rng.normals(tokens * hidden), deepstack: Array.from({ length: levels }, () => rng.normals(tokens * hidden)) };
  const w = new Uint32Array(e.merged.buffer);
  w[0] = 0x7fc0beef; // NaN with a payload
  w[1] = 0x80000000; // −0
  return e;
}

const bits = (a: Float32Array) => new Uint32Array(a.buffer, a.byteOffset, a.length);

function expectSameBits(got: VisionEmbedding | null, want: VisionEmbedding): void {
  expect(got).not.toBeNull();
  const g = got!;
  expect([g.tokens, g.hidden, g.deepstack.length]).toEqual([want.tokens, want.hidden, want.deepstack.length]);
  expect(Buffer.compare(Buffer.from(bits(g.merged).buffer), Buffer.from(bits(want.merged).buffer))).toBe(0);
  for (let l = 0; l < want.deepstack.length; l++) {
    expect(Buffer.compare(Buffer.from(bits(g.deepstack[l]).buffer), Buffer.from(bits(want.deepstack[l]).buffer)), `deepstack[${l}]`).toBe(0);
  }
}

async function key(seed: number): Promise<string> {
  return visionCacheKey({ modelId: 'test-model', bytes: new Uint8Array([seed, seed >> 8, 1, 2, 3]), params: { maxPixels: 1 << 20 } });
}

/** A TCP port nothing listens on right now. */
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

/**
 * Sends commands (plain strings, RESP encoded) on a fresh connection and returns the first line
 * of each reply (`+OK`, `:42`, `-ERR …`, `$-1`); enough for PING, AUTH, SELECT, TTL, EXISTS, SET.
 * Independent of the client under test.
 */
function raw(port: number, commands: string[][]): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const sock: Socket = netConnect({ host: '127.0.0.1', port });
    let got = '';
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`no reply from 127.0.0.1:${port} to ${JSON.stringify(commands)}`));
    }, 2000);
    sock.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    sock.on('connect', () => {
      for (const c of commands) sock.write(`*${c.length}\r\n${c.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`);
    });
    sock.on('data', (d) => {
      got += d.toString('latin1');
      const lines = got.split('\r\n');
      if (lines.length > commands.length) {
        clearTimeout(timer);
        sock.destroy();
        resolve(lines.slice(0, commands.length));
      }
    });
  });
}

interface Redis {
  proc: ChildProcess;
  port: number;
}

/** Starts redis-server on 127.0.0.1:`port` and waits until it answers PING. */
async function startRedis(port: number, dir: string, extra: string[] = []): Promise<Redis> {
  const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--loglevel', 'warning', ...extra], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  proc.stdout?.on('data', (d) => (log += d));
  proc.stderr?.on('data', (d) => (log += d));
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline) {
    if (proc.exitCode !== null) throw new Error(`redis-server exited (${proc.exitCode}): ${log}`);
    try {
      const [reply] = await raw(port, [['PING']]);
      if (reply === '+PONG' || reply.startsWith('-NOAUTH')) return { proc, port };
    } catch {
      // not listening yet
    }
    await sleep(20);
  }
  proc.kill('SIGKILL');
  throw new Error(`redis-server on port ${port} did not answer PING within 5 s: ${log}`);
}

async function stopRedis(r: Redis | undefined): Promise<void> {
  if (!r || r.proc.exitCode !== null || r.proc.signalCode !== null) return;
  const exited = new Promise((res) => r.proc.once('exit', res));
  r.proc.kill('SIGKILL');
  await exited;
}

/** Runs `f` and returns its result with the milliseconds it took. */
async function timed<T>(f: () => Promise<T>): Promise<[T, number]> {
  const t0 = performance.now();
  const v = await f();
  return [v, performance.now() - t0];
}

describe('parseRedisUrl', () => {
  it('reads host, port, credentials and database', () => {
    expect(parseRedisUrl('redis://10.0.0.5')).toEqual({ host: '10.0.0.5', port: 6379, db: 0 });
    expect(parseRedisUrl('redis://:s3cret@cache.local:6380/2')).toEqual({ host: 'cache.local', port: 6380, password: 's3cret', db: 2 });
    expect(parseRedisUrl('redis://edge:p%40ss@[::1]:7000/')).toEqual({ host: '::1', port: 7000, username: 'edge', password: 'p@ss', db: 0 });
  });

  it('refuses what it cannot serve, with a typed error', () => {
    for (const bad of ['not a url', 'http://127.0.0.1:6379', 'rediss://127.0.0.1', 'redis://127.0.0.1/x', 'redis://user@127.0.0.1']) {
      expect(() => parseRedisUrl(bad), bad).toThrow(RedisUrlError);
    }
    expect(() => new RedisVisionCache({ url: 'rediss://h' })).toThrow(/TLS/);
    expect(() => new RedisVisionCache({ url: 'redis://h', ttlS: 0 })).toThrow(RangeError);
  });
});

describe('redis-server on PATH', () => {
  // CI installs redis-server: there its absence is a failure, elsewhere the tests below skip.
  it.runIf(ci)('is installed in CI', () => {
    expect(hasRedis, INSTALL_HELP).toBe(true);
  });
});

describe('RedisVisionCache with nothing listening', () => {
  it('misses at once, counts errors and never rejects', async () => {
    const port = await freePort();
    const errors: Error[] = [];
    const c = new RedisVisionCache({ url: `redis://127.0.0.1:${port}`, onError: (e) => errors.push(e) });
    const [got, ms] = await timed(() => c.get('k'));
    expect(got).toBeNull();
    const [, setMs] = await timed(() => c.set('k', embedding(2, 3, 1, 1)));
    expect(ms).toBeLessThan(1000);
    expect(setMs).toBeLessThan(1000);
    expect(await c.ping()).toBe(false);
    expect(c.stats).toEqual({ hits: 0, misses: 1, errors: 2, entries: 0, bytes: 0 });
    expect(errors[0]).toBeInstanceOf(RedisCommandError);
    expect((errors[0] as RedisCommandError).failure).toBe('unavailable');
    await c.close();
  });

  it('gives up on a server that accepts but never answers, within the command timeout', async () => {
    const sockets: Socket[] = [];
    const silent: Server = createServer((s) => sockets.push(s));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const { port } = silent.address() as { port: number };
    const errors: Error[] = [];
    const c = new RedisVisionCache({ url: `redis://127.0.0.1:${port}`, commandTimeoutMs: 200, retryDelayMs: 5000, onError: (e) => errors.push(e) });
    try {
      const [got, ms] = await timed(() => c.get('k'));
      expect(got).toBeNull();
      expect(ms).toBeGreaterThanOrEqual(150);
      expect(ms).toBeLessThan(1000);
      expect((errors[0] as RedisCommandError).failure).toBe('timeout');
      // Now marked down: the next calls do not wait again.
      const [, ms2] = await timed(() => Promise.all([c.get('k'), c.set('k', embedding(2, 3, 1, 1))]));
      expect(ms2).toBeLessThan(100);
      expect(c.stats).toMatchObject({ misses: 2, errors: 3, hits: 0 });
    } finally {
      await c.close();
      for (const s of sockets) s.destroy();
      await new Promise((r) => silent.close(r));
    }
  });
});

describe.skipIf(!hasRedis)('RedisVisionCache against redis-server', () => {
  let dir: string;
  let redis: Redis | undefined;
  let secured: Redis | undefined;
  const caches: RedisVisionCache[] = [];
  const cache = (o: Partial<ConstructorParameters<typeof RedisVisionCache>[0]> = {}) => {
    const c = new RedisVisionCache({ url: `redis://127.0.0.1:${redis!.port}`, retryDelayMs: 50, maxRetryDelayMs: 100, ...o });
    caches.push(c);
    return c;
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'vlmesh-redis-'));
    redis = await startRedis(await freePort(), dir);
  });
  afterAll(async () => {
    for (const c of caches) await c.close();
    await stopRedis(redis);
    await stopRedis(secured);
    rmSync(dir, { recursive: true, force: true });
  });

  it('shares values between two nodes, bit for bit, and misses on absent keys', async () => {
    const nodeA = cache();
    const nodeB = cache();
    // ~1.2 MB: the reply arrives in many socket chunks.
    const e = embedding(300, 256, 3, 7);
    const k = await key(1);
    expect(await nodeB.get(k)).toBeNull();
    await nodeA.set(k, e);
    expectSameBits(await nodeB.get(k), e);
    expectSameBits(await nodeA.get(k), e);
    const small = embedding(1, 2, 0, 8);
    await nodeB.set(await key(2), small);
    expectSameBits(await nodeA.get(await key(2)), small);
    expect(nodeA.stats).toEqual({ hits: 2, misses: 0, errors: 0, entries: 0, bytes: 0 });
    expect(nodeB.stats).toEqual({ hits: 1, misses: 1, errors: 0, entries: 0, bytes: 0 });
    expect(await nodeA.ping()).toBe(true);
  });

  it('stores with the TTL and under the key prefix', async () => {
    const k = await key(3);
    await cache().set(k, embedding(2, 2, 1, 3));
    const [ttl] = await raw(redis!.port, [['TTL', `vlmesh:vision:${k}`]]);
    expect(Number(ttl.slice(1))).toBeGreaterThan(3590);
    expect(Number(ttl.slice(1))).toBeLessThanOrEqual(3600);

    const short = cache({ ttlS: 1, keyPrefix: 'test:vc:' });
    await short.set(k, embedding(2, 2, 1, 3));
    const [ttl2, exists] = await raw(redis!.port, [['PTTL', `test:vc:${k}`], ['EXISTS', `test:vc:${k}`]]);
    expect(Number(ttl2.slice(1))).toBeGreaterThan(0);
    expect(Number(ttl2.slice(1))).toBeLessThanOrEqual(1000);
    expect(exists).toBe(':1');
    expect(await short.get(k)).not.toBeNull();
    await sleep(1100);
    expect(await short.get(k)).toBeNull();
  });

  it('reads a value that does not decode as a miss and counts an error', async () => {
    const c = cache({ keyPrefix: 'corrupt:' });
    const errors: Error[] = [];
    const c2 = cache({ keyPrefix: 'corrupt:', onError: (e) => errors.push(e) });
    const k = await key(4);
    expect(await raw(redis!.port, [['SET', `corrupt:${k}`, 'not an embedding at all']])).toEqual(['+OK']);
    expect(await c2.get(k)).toBeNull();
    expect(c2.stats).toMatchObject({ hits: 0, misses: 1, errors: 1 });
    expect(errors[0]).toBeInstanceOf(VisionCacheDecodeError);
    // A good value written over it reads again.
    const e = embedding(3, 3, 2, 4);
    await c.set(k, e);
    expectSameBits(await c2.get(k), e);
  });

  it('authenticates and selects the database from the URL', async () => {
    secured = await startRedis(await freePort(), dir, ['--requirepass', 'pa ss@word']);
    const url = `redis://:${encodeURIComponent('pa ss@word')}@127.0.0.1:${secured.port}/3`;
    const c = cache({ url });
    const k = await key(5);
    const e = embedding(4, 4, 1, 5);
    await c.set(k, e);
    expectSameBits(await c.get(k), e);
    const replies = await raw(secured.port, [['AUTH', 'pa ss@word'], ['EXISTS', `vlmesh:vision:${k}`], ['SELECT', '3'], ['EXISTS', `vlmesh:vision:${k}`]]);
    expect(replies).toEqual(['+OK', ':0', '+OK', ':1']);

    const errors: Error[] = [];
    const wrong = cache({ url: `redis://:nope@127.0.0.1:${secured.port}/3`, onError: (err) => errors.push(err) });
    expect(await wrong.get(k)).toBeNull();
    expect(wrong.stats).toMatchObject({ misses: 1, errors: 1 });
    expect((errors[0] as RedisCommandError).failure).toBe('reply');
    expect(errors[0].message).toMatch(/WRONGPASS|invalid/i);
  });

  it('survives redis-server dying and uses it again once it is back', async () => {
    const nodeA = cache();
    const nodeB = cache();
    const e = embedding(16, 32, 3, 6);
    const k = await key(6);
    await nodeA.set(k, e);
    expectSameBits(await nodeB.get(k), e); // both connected now

    await stopRedis(redis);
    const before = { a: nodeA.stats.errors, b: nodeB.stats.errors };
    for (let i = 0; i < 3; i++) {
      const [got, ms] = await timed(() => nodeB.get(k));
      expect(got).toBeNull();
      expect(ms).toBeLessThan(1000);
      const [, setMs] = await timed(() => nodeA.set(k, e));
      expect(setMs).toBeLessThan(1000);
    }
    const [all, msAll] = await timed(() => Promise.all([nodeA.get(k), nodeB.get(k), nodeA.set(k, e)]));
    expect(all.slice(0, 2)).toEqual([null, null]);
    expect(msAll).toBeLessThan(1000);
    expect(nodeA.stats.errors - before.a).toBe(5);
    expect(nodeB.stats.errors - before.b).toBe(4);

    redis = await startRedis(redis!.port, dir);
    // Back-off is ≤ 100 ms here: within a few rounds both nodes reconnect on their own.
    let shared: VisionEmbedding | null = null;
    const deadline = Date.now() + 3000;
    while (!shared && Date.now() < deadline) {
      await nodeA.set(k, e);
      shared = await nodeB.get(k);
      if (!shared) await sleep(50);
    }
    expectSameBits(shared, e);
    expect(await nodeA.ping()).toBe(true);
  });
});
