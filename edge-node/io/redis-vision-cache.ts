/**
 * The vision-embedding cache in Redis, so a fleet of edge nodes shares one: an image one node
 * has seen skips the vision tower on every other. Values are `encodeVisionEmbedding` bytes
 * (shared/engine/vision-cache.ts) stored with `SET key value EX ttl`.
 *
 * Redis is an accelerator here, never a dependency of the request path: when it is unreachable,
 * slow or answers garbage, `get` reads a miss and `set` drops the value, `stats.errors` counts
 * it, and no call waits longer than the command timeout.
 *
 *   state      a command…                                           and then
 *   idle       waits for a connect (≤ connectTimeoutMs), then runs   → ready, or down
 *   ready      is written at once and answered in order (≤ commandTimeoutMs)
 *   down       fails at once; once the back-off has passed, it       → ready, or down with the
 *              starts one reconnect in the background                   back-off doubled (≤ max)
 *
 * A connection that times out or breaks fails every command on it (a late reply could no
 * longer be matched to its command) and goes down; Redis closing an idle connection just
 * returns to idle.
 *
 * The client is a small RESP2 client over node:net — GET, SET … EX, PING, AUTH, SELECT and
 * whatever else `RespClient.command` is given, binary-safe — rather than a general-purpose
 * library, so that exactly these failure rules hold: no offline queue, no unbounded reconnect
 * loop, every command bounded. TLS (`rediss://`) is not supported.
 */
import { connect as netConnect, type Socket } from 'node:net';
import {
  checkVisionEmbedding,
  decodeVisionEmbedding,
  encodeVisionEmbedding,
  type VisionCache,
  type VisionCacheStats,
  type VisionEmbedding,
} from '../../shared/engine/vision-cache.ts';
import { VlmeshError } from '../../shared/errors.ts';

/** The `--redis-url` is not a `redis://[user:pass@]host[:port][/db]` URL. */
export class RedisUrlError extends VlmeshError {
  constructor(message: string) {
    super('REDIS_URL', message);
  }
}

/** Why a Redis command did not complete. */
export type RedisFailure = 'unavailable' | 'timeout' | 'protocol' | 'reply' | 'closed';

/** A Redis command failed: the server is unreachable or down, slow, spoke garbage, or answered an error. */
export class RedisCommandError extends VlmeshError {
  readonly failure: RedisFailure;
  constructor(failure: RedisFailure, message: string, options?: { cause?: unknown }) {
    super(`REDIS_${failure.toUpperCase()}`, message, options);
    this.failure = failure;
  }
}

/** Where and how to connect, from a `redis://` URL. */
export interface RedisEndpoint {
  host: string;
  port: number;
  username?: string;
  password?: string;
  db: number;
}

/**
 * Parses `redis://[[user]:pass@]host[:port][/db]` (port 6379 and db 0 by default; user and
 * password percent-decoded).
 * @throws RedisUrlError
 * @example
 * parseRedisUrl('redis://:s3cret@10.0.0.5:6380/2') // { host: '10.0.0.5', port: 6380, password: 's3cret', db: 2 }
 */
export function parseRedisUrl(url: string): RedisEndpoint {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new RedisUrlError(`"${url}" is not a URL; expected redis://[user:pass@]host[:port][/db]`);
  }
  if (u.protocol === 'rediss:') throw new RedisUrlError(`"${url}": TLS (rediss://) is not supported; reach Redis over a private network or a TLS tunnel`);
  if (u.protocol !== 'redis:') throw new RedisUrlError(`"${url}": the scheme must be redis://`);
  const host = u.hostname.replace(/^\[(.*)\]$/, '$1');
  if (!host) throw new RedisUrlError(`"${url}" names no host`);
  const port = u.port ? Number(u.port) : 6379;
  const path = u.pathname.replace(/^\//, '');
  if (path !== '' && !/^\d+$/.test(path)) throw new RedisUrlError(`"${url}": the path must be a database number, got "/${path}"`);
  const ep: RedisEndpoint = { host, port, db: path === '' ? 0 : Number(path) };
  if (u.password) {
    ep.password = decodeURIComponent(u.password);
    if (u.username) ep.username = decodeURIComponent(u.username);
  } else if (u.username) {
    throw new RedisUrlError(`"${url}" has a user but no password; write redis://user:pass@host or redis://:pass@host`);
  }
  return ep;
}

// ---------------------------------------------------------------------------------------------
// RESP2 wire format

/** A RESP2 reply: simple string, integer, bulk string (bytes) or null bulk. Error replies reject. */
export type RespValue = string | number | Buffer | null;

type RespReply = { ok: true; value: RespValue } | { ok: false; message: string };

/** The largest bulk reply accepted (Redis's own proto-max-bulk-len default is 512 MiB). */
const MAX_BULK = 1 << 30;
/** The longest header / simple-string line accepted. */
const MAX_LINE = 64 * 1024;

/** `*N $len arg …` as buffers to write in order; large binary arguments are not copied. */
function encodeCommand(args: readonly (string | Uint8Array)[]): Uint8Array[] {
  const out: Uint8Array[] = [];
  let head = `*${args.length}\r\n`;
  for (const a of args) {
    if (typeof a === 'string') {
      head += `$${Buffer.byteLength(a)}\r\n${a}\r\n`;
    } else {
      out.push(Buffer.from(`${head}$${a.length}\r\n`));
      out.push(a);
      head = '\r\n';
    }
  }
  out.push(Buffer.from(head));
  return out;
}

/**
 * Incremental RESP2 reply parser. Bulk payloads are copied once, straight into a buffer of their
 * announced size, however the socket splits them.
 */
class RespParser {
  private rest: Buffer = Buffer.alloc(0);
  private bulk: { buf: Buffer; filled: number; crlf: number } | null = null;

  /** Feeds one chunk; returns the replies it completed. @throws RedisCommandError('protocol') */
  push(chunk: Buffer): RespReply[] {
    const replies: RespReply[] = [];
    const data = this.rest.length ? Buffer.concat([this.rest, chunk]) : chunk;
    this.rest = Buffer.alloc(0);
    let i = 0;
    while (i < data.length) {
      if (this.bulk) {
        const b = this.bulk;
        if (b.filled < b.buf.length) {
          const n = Math.min(b.buf.length - b.filled, data.length - i);
          data.copy(b.buf, b.filled, i, i + n);
          b.filled += n;
          i += n;
        }
        while (b.crlf < 2 && i < data.length) {
          if (data[i] !== (b.crlf === 0 ? 0x0d : 0x0a)) throw new RedisCommandError('protocol', 'bulk string not followed by CRLF');
          b.crlf++;
          i++;
        }
        if (b.filled < b.buf.length || b.crlf < 2) break;
        this.bulk = null;
        replies.push({ ok: true, value: b.buf });
        continue;
      }
      const eol = data.indexOf('\r\n', i);
      if (eol < 0) {
        if (data.length - i > MAX_LINE) throw new RedisCommandError('protocol', `reply line longer than ${MAX_LINE} bytes`);
        this.rest = Buffer.from(data.subarray(i));
        break;
      }
      const type = data[i];
      const line = data.toString('utf8', i + 1, eol);
      i = eol + 2;
      switch (type) {
        case 0x2b: // '+'
          replies.push({ ok: true, value: line });
          break;
        case 0x2d: // '-'
          replies.push({ ok: false, message: line });
          break;
        case 0x3a: {
          // ':'
          if (!/^-?\d+$/.test(line)) throw new RedisCommandError('protocol', `bad integer reply "${line}"`);
          replies.push({ ok: true, value: Number(line) });
          break;
        }
        case 0x24: {
          // '$'
          if (line === '-1') {
            replies.push({ ok: true, value: null });
            break;
          }
          const len = Number(line);
          if (!/^\d+$/.test(line) || len > MAX_BULK) throw new RedisCommandError('protocol', `bad bulk length "${line}"`);
          this.bulk = { buf: Buffer.allocUnsafe(len), filled: 0, crlf: 0 };
          break;
        }
        default:
          throw new RedisCommandError('protocol', `unexpected reply type 0x${type.toString(16)} (this client speaks GET/SET/PING-style RESP2 only)`);
      }
    }
    return replies;
  }
}

interface Pending {
  resolve: (v: RespValue) => void;
  reject: (e: Error) => void;
  timer: ReturnType<typeof setTimeout>;
}

/** One TCP connection: commands written in order, replies matched in order. */
class RespConnection {
  private readonly parser = new RespParser();
  private readonly pending: Pending[] = [];
  private dead: Error | null = null;

  constructor(
    private readonly socket: Socket,
    private readonly commandTimeoutMs: number,
    /** Called once when the connection ends; `failed` when commands were lost or it broke. */
    private readonly onEnd: (conn: RespConnection, failed: boolean, err: Error) => void,
  ) {
    socket.on('data', (chunk: Buffer) => {
      let replies: RespReply[];
      try {
        replies = this.parser.push(chunk);
      } catch (e) {
        this.destroy(e as Error, true);
        return;
      }
      for (const r of replies) {
        const p = this.pending.shift();
        if (!p) {
          this.destroy(new RedisCommandError('protocol', 'reply without a command'), true);
          return;
        }
        clearTimeout(p.timer);
        if (r.ok) p.resolve(r.value);
        else p.reject(new RedisCommandError('reply', `Redis answered: ${r.message}`));
      }
      if (this.pending.length === 0) socket.unref();
    });
    socket.on('error', (e) => this.destroy(new RedisCommandError('unavailable', `Redis connection failed: ${e.message}`, { cause: e }), true));
    socket.on('close', () => {
      const lost = this.pending.length > 0;
      this.destroy(new RedisCommandError('unavailable', 'Redis closed the connection'), lost);
    });
    socket.unref();
  }

  get alive(): boolean {
    return this.dead === null;
  }

  send(args: readonly (string | Uint8Array)[]): Promise<RespValue> {
    if (this.dead) return Promise.reject(this.dead);
    return new Promise<RespValue>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.destroy(new RedisCommandError('timeout', `Redis did not answer ${String(args[0])} within ${this.commandTimeoutMs} ms`), true);
      }, this.commandTimeoutMs);
      this.pending.push({ resolve, reject, timer });
      this.socket.ref();
      this.socket.cork();
      for (const part of encodeCommand(args)) this.socket.write(part);
      this.socket.uncork();
    });
  }

  /** Fails every pending command with `err` and closes the socket (idempotent). */
  destroy(err: Error, failed: boolean): void {
    if (this.dead) return;
    this.dead = err;
    for (const p of this.pending.splice(0)) {
      clearTimeout(p.timer);
      p.reject(err);
    }
    this.socket.destroy();
    this.onEnd(this, failed, err);
  }
}

export interface RespClientOptions {
  /** Bound on one command, from write to reply (default 2000 ms). */
  commandTimeoutMs?: number;
  /** Bound on connecting, AUTH and SELECT together (default 1000 ms). */
  connectTimeoutMs?: number;
  /** Back-off after a failure before the next reconnect (default 500 ms; doubles per failure). */
  retryDelayMs?: number;
  /** Longest back-off (default 10 000 ms). */
  maxRetryDelayMs?: number;
}

/**
 * A minimal RESP2 client with the failure rules in the file header: commands never queue behind
 * a dead server, every one is bounded by a timeout, and reconnects back off.
 *
 * @example
 * const c = new RespClient(parseRedisUrl('redis://127.0.0.1:6379'));
 * await c.command(['SET', 'k', bytes, 'EX', '60']); // 'OK'
 * const v = await c.command(['GET', 'k']);          // Buffer | null
 * c.close();
 */
export class RespClient {
  readonly endpoint: RedisEndpoint;
  private readonly commandTimeoutMs: number;
  private readonly connectTimeoutMs: number;
  private readonly retryDelayMs: number;
  private readonly maxRetryDelayMs: number;
  private conn: RespConnection | null = null;
  private connecting: Promise<RespConnection> | null = null;
  /** Set after a failure: commands fail at once; a reconnect starts in the background after `retryAt`. */
  private down: { retryAt: number; delay: number; error: Error } | null = null;
  private closed = false;

  constructor(endpoint: RedisEndpoint, o: RespClientOptions = {}) {
    this.endpoint = endpoint;
    this.commandTimeoutMs = o.commandTimeoutMs ?? 2000;
    this.connectTimeoutMs = o.connectTimeoutMs ?? 1000;
    this.retryDelayMs = o.retryDelayMs ?? 500;
    this.maxRetryDelayMs = Math.max(o.maxRetryDelayMs ?? 10_000, this.retryDelayMs);
    for (const [name, v] of Object.entries({ commandTimeoutMs: this.commandTimeoutMs, connectTimeoutMs: this.connectTimeoutMs, retryDelayMs: this.retryDelayMs })) {
      if (!(v > 0)) throw new RangeError(`${name} must be a number > 0, got ${v}`);
    }
  }

  /** Whether a connection is open now. */
  get connected(): boolean {
    return this.conn?.alive === true;
  }

  /**
   * Runs one command. Resolves with the reply; rejects with `RedisCommandError` when Redis is
   * down (at once), slow (after the timeout), answers an error reply, or the client is closed.
   */
  async command(args: readonly (string | Uint8Array)[]): Promise<RespValue> {
    if (this.closed) throw new RedisCommandError('closed', 'the Redis client is closed');
    if (this.conn?.alive) return this.conn.send(args);
    if (this.down) {
      if (!this.connecting && Date.now() >= this.down.retryAt) this.startConnect().catch(() => {});
      throw this.down.error;
    }
    const conn = await this.startConnect();
    return conn.send(args);
  }

  /** Closes the connection; pending and later commands reject with failure `closed`. */
  close(): void {
    this.closed = true;
    this.conn?.destroy(new RedisCommandError('closed', 'the Redis client is closed'), false);
    this.conn = null;
  }

  private startConnect(): Promise<RespConnection> {
    if (!this.connecting) {
      this.connecting = this.open().then(
        (conn) => {
          this.connecting = null;
          if (this.closed) {
            conn.destroy(new RedisCommandError('closed', 'the Redis client is closed'), false);
            throw new RedisCommandError('closed', 'the Redis client is closed');
          }
          this.conn = conn;
          this.down = null;
          return conn;
        },
        (e: unknown) => {
          this.connecting = null;
          const err = e instanceof RedisCommandError ? e : new RedisCommandError('unavailable', String(e), { cause: e });
          this.markDown(err);
          throw err;
        },
      );
    }
    return this.connecting;
  }

  private markDown(error: Error): void {
    const delay = this.down ? Math.min(this.down.delay * 2, this.maxRetryDelayMs) : this.retryDelayMs;
    this.down = { retryAt: Date.now() + delay, delay, error };
  }

  /** Connects, then AUTH and SELECT as the URL asks; all within connectTimeoutMs. */
  private open(): Promise<RespConnection> {
    const { host, port, username, password, db } = this.endpoint;
    const where = `${host}:${port}`;
    return new Promise<RespConnection>((resolve, reject) => {
      let settled = false;
      const socket = netConnect({ host, port });
      socket.setNoDelay(true);
      socket.setKeepAlive(true, 10_000);
      const fail = (err: RedisCommandError) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        socket.destroy();
        reject(err);
      };
      const timer = setTimeout(() => fail(new RedisCommandError('timeout', `Redis at ${where}: no connection within ${this.connectTimeoutMs} ms`)), this.connectTimeoutMs);
      socket.once('error', (e) => fail(new RedisCommandError('unavailable', `Redis at ${where} unreachable: ${e.message}`, { cause: e })));
      socket.once('connect', () => {
        const conn = new RespConnection(socket, this.commandTimeoutMs, (c, failed, err) => {
          // Only the live connection's end changes state; a handshake failure is handled below.
          if (this.conn !== c) return;
          this.conn = null;
          if (failed && !this.closed) this.markDown(err);
        });
        const handshake: Promise<unknown>[] = [];
        if (password !== undefined) handshake.push(conn.send(username !== undefined ? ['AUTH', username, password] : ['AUTH', password]));
        if (db !== 0) handshake.push(conn.send(['SELECT', String(db)]));
        Promise.all(handshake).then(
          () => {
            if (settled) return conn.destroy(new RedisCommandError('timeout', 'connect timed out'), false);
            settled = true;
            clearTimeout(timer);
            resolve(conn);
          },
          (e: RedisCommandError) => {
            conn.destroy(e, false);
            fail(new RedisCommandError(e.failure, `Redis at ${where}: ${e.message}`, { cause: e }));
          },
        );
      });
    });
  }
}

// ---------------------------------------------------------------------------------------------
// The cache

export interface RedisVisionCacheOptions extends RespClientOptions {
  /** `redis://[[user]:pass@]host[:port][/db]` */
  url: string;
  /** Seconds a value lives in Redis (SET … EX; default 3600). */
  ttlS?: number;
  /** Prefix of every key (default `vlmesh:vision:`). */
  keyPrefix?: string;
  /** Told about every store failure (for a log line); the call itself still reads as a miss. */
  onError?: (err: Error) => void;
}

/**
 * The vision cache in Redis, shared by every node that points at the same server. Never rejects
 * because of Redis: failures count in `stats.errors` and read as misses. Keeps nothing in this
 * process (`stats.entries` and `stats.bytes` stay 0).
 *
 * @throws RedisUrlError from the constructor when `url` is malformed.
 * @example
 * const cache = new RedisVisionCache({ url: 'redis://10.0.0.5:6379/1', ttlS: 6 * 3600 });
 * const emb = (await cache.get(key)) ?? (await runVisionTower(image));
 * await cache.set(key, emb);
 */
export class RedisVisionCache implements VisionCache {
  readonly ttlS: number;
  readonly keyPrefix: string;
  private readonly client: RespClient;
  private readonly onError: ((err: Error) => void) | undefined;
  private hits = 0;
  private misses = 0;
  private errors = 0;
  private closed = false;

  constructor(o: RedisVisionCacheOptions) {
    this.ttlS = o.ttlS ?? 3600;
    if (!Number.isInteger(this.ttlS) || this.ttlS <= 0) throw new RangeError(`ttlS must be a positive integer, got ${o.ttlS}`);
    this.keyPrefix = o.keyPrefix ?? 'vlmesh:vision:';
    this.client = new RespClient(parseRedisUrl(o.url), o);
    this.onError = o.onError;
  }

  get stats(): VisionCacheStats {
    return { hits: this.hits, misses: this.misses, errors: this.errors, entries: 0, bytes: 0 };
  }

  async get(key: string): Promise<VisionEmbedding | null> {
    let reply: RespValue;
    try {
      reply = await this.client.command(['GET', this.keyPrefix + key]);
    } catch (e) {
      return this.miss(e);
    }
    if (reply === null) return this.miss();
    if (!Buffer.isBuffer(reply)) return this.miss(new RedisCommandError('protocol', 'GET answered something other than a bulk string'));
    try {
      const value = decodeVisionEmbedding(reply);
      this.hits++;
      return value;
    } catch (e) {
      return this.miss(e);
    }
  }

  /** Stores `value` for `ttlS` seconds. @throws ShapeError when the value's arrays do not match its dims. */
  async set(key: string, value: VisionEmbedding): Promise<void> {
    checkVisionEmbedding(value);
    try {
      await this.client.command(['SET', this.keyPrefix + key, encodeVisionEmbedding(value), 'EX', String(this.ttlS)]);
    } catch (e) {
      this.fail(e);
    }
  }

  /** Whether Redis answers PING now (for a startup log line or a health check); never rejects. */
  async ping(): Promise<boolean> {
    try {
      return (await this.client.command(['PING'])) === 'PONG';
    } catch {
      return false;
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    this.client.close();
  }

  private miss(err?: unknown): null {
    this.misses++;
    if (err !== undefined) this.fail(err);
    return null;
  }

  private fail(err: unknown): void {
    if (this.closed) return;
    this.errors++;
    this.onError?.(err instanceof Error ? err : new Error(String(err)));
  }
}
