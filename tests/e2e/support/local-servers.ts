/**
 * Servers for the local-engine browser test: a Vite dev server over web/ (it compiles the
 * harness page, the engine worker and shared/), with every request it receives logged, and the
 * model files under `/models/<name>/` — proxied to `vlmesh serve` when that serves them, else
 * read from disk here (with Range, ETag and Last-Modified, as a static file server answers).
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { type IncomingMessage, request as httpRequest, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createServer, type Plugin, type ViteDevServer } from 'vite';

const root = fileURLToPath(new URL('../../../', import.meta.url));

/** One request the dev server saw. */
export interface LoggedRequest {
  method: string;
  /** Path and query. */
  url: string;
  range: string | null;
  /** Set when the request came in; the status is filled when answered. */
  status?: number;
}

/** Answers GET/HEAD of one file with Range support (single ranges), ETag and Last-Modified. */
async function sendFileWithRange(req: IncomingMessage, res: ServerResponse, path: string): Promise<boolean> {
  let st: Awaited<ReturnType<typeof stat>>;
  try {
    st = await stat(path);
  } catch {
    return false;
  }
  if (!st.isFile()) return false;
  const size = st.size;
  const etag = `"${size.toString(16)}-${Math.floor(st.mtimeMs).toString(16)}"`;
  res.setHeader('Accept-Ranges', 'bytes');
  res.setHeader('ETag', etag);
  res.setHeader('Last-Modified', st.mtime.toUTCString());
  res.setHeader('Cache-Control', 'no-cache');
  res.setHeader('Content-Type', path.endsWith('.json') ? 'application/json' : 'application/octet-stream');
  const range = req.headers.range;
  let start = 0;
  let end = size - 1;
  if (range) {
    const m = /^bytes=(\d*)-(\d*)$/.exec(range);
    if (!m || (m[1] === '' && m[2] === '')) {
      res.statusCode = 416;
      res.setHeader('Content-Range', `bytes */${size}`);
      res.end();
      return true;
    }
    if (m[1] === '') {
      start = Math.max(0, size - Number(m[2]));
    } else {
      start = Number(m[1]);
      end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
    }
    if (start >= size || start > end) {
      res.statusCode = 416;
      res.setHeader('Content-Range', `bytes */${size}`);
      res.end();
      return true;
    }
    res.statusCode = 206;
    res.setHeader('Content-Range', `bytes ${start}-${end}/${size}`);
  } else {
    res.statusCode = 200;
  }
  res.setHeader('Content-Length', String(end - start + 1));
  if (req.method === 'HEAD') {
    res.end();
    return true;
  }
  await new Promise<void>((resolve, reject) => {
    const s = createReadStream(path, { start, end });
    s.on('error', reject);
    res.on('close', () => resolve());
    s.pipe(res);
  });
  return true;
}

export interface HarnessServerOptions {
  /** Model directories served as /models/<name>/ from disk (until `proxyModelsTo` is set). */
  models?: Record<string, string>;
  /** An origin (http://host:port) that serves /models/… itself: requests are proxied there. */
  proxyModelsTo?: string;
  /** Modules to compile as soon as the server starts (paths relative to web/). */
  warmup?: string[];
  /**
   * Fail a request once: the first GET whose path matches and whose Range starts at `rangeStart`
   * is answered 503 (a dropped download, for the resume test).
   */
  failOnce?: { path: RegExp; rangeStart: number };
}

export interface HarnessServer {
  /** Base URL ending in '/'. */
  url: string;
  /** Every request received, in order. */
  requests: LoggedRequest[];
  /** Arms another one-time failure (see HarnessServerOptions.failOnce). */
  failOnce(f: { path: RegExp; rangeStart: number }): void;
  /** From now on, /models/… is proxied to this origin. */
  proxyModelsTo(origin: string): void;
  close(): Promise<void>;
}

/**
 * Starts Vite over web/ on a free loopback port.
 *
 * @example
 * const s = await startHarnessServer({ models: { tiny: 'tests/fixtures/golden/realvocab' } });
 * await page.goto(`${s.url}local-harness.html?model=/models/tiny/`);
 */
export async function startHarnessServer(o: HarnessServerOptions): Promise<HarnessServer> {
  const requests: LoggedRequest[] = [];
  let failure = o.failOnce ?? null;
  let upstream = o.proxyModelsTo ?? null;
  const plugin: Plugin = {
    name: 'vlmesh-local-harness',
    configureServer(server) {
      server.middlewares.use((req, res, next) => {
        const entry: LoggedRequest = { method: req.method ?? 'GET', url: req.url ?? '', range: (req.headers.range as string | undefined) ?? null };
        requests.push(entry);
        res.on('finish', () => {
          entry.status = res.statusCode;
        });
        const path = (req.url ?? '').split('?')[0];
        if (failure && path.startsWith('/models/') && failure.path.test(path)) {
          const m = /^bytes=(\d+)-/.exec(entry.range ?? '');
          if (m && Number(m[1]) === failure.rangeStart) {
            failure = null;
            res.statusCode = 503;
            res.end('simulated outage');
            return;
          }
        }
        if (upstream && path.startsWith('/models/')) {
          // Forward as is (Range included) and stream the answer back.
          const target = new URL(req.url ?? '/', upstream);
          const fwd = httpRequest(target, { method: req.method, headers: { ...req.headers, host: target.host } }, (up) => {
            res.writeHead(up.statusCode ?? 502, up.headers);
            up.pipe(res);
          });
          fwd.on('error', (e) => next(e));
          req.pipe(fwd);
          return;
        }
        if (path.startsWith('/models/')) {
          const [, , name, ...rest] = path.split('/');
          const dir = o.models?.[decodeURIComponent(name ?? '')];
          const file = decodeURIComponent(rest.join('/'));
          if (!dir || file.includes('/') || file.startsWith('.')) {
            res.statusCode = 404;
            res.end();
            return;
          }
          sendFileWithRange(req, res, join(root, dir, file)).then(
            (sent) => {
              if (!sent) {
                res.statusCode = 404;
                res.end();
              }
            },
            (e) => next(e),
          );
          return;
        }
        next();
      });
    },
  };
  const server: ViteDevServer = await createServer({
    configFile: false,
    root: join(root, 'web'),
    publicDir: false,
    logLevel: 'warn',
    clearScreen: false,
    plugins: [plugin],
    worker: { format: 'es' },
    // Pre-bundle the few dependencies up front: a discovery mid-test would reload the page.
    optimizeDeps: { include: ['comlink', '@huggingface/jinja'] },
    server: {
      host: '127.0.0.1',
      port: 0,
      strictPort: false,
      hmr: false,
      fs: { allow: [root] },
      ...(o.warmup ? { warmup: { clientFiles: o.warmup } } : {}),
    },
  });
  await server.listen();
  const addr = server.httpServer?.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${addr.port}/`,
    requests,
    failOnce: (f) => {
      failure = f;
    },
    proxyModelsTo: (origin) => {
      upstream = origin;
    },
    close: () => server.close(),
  };
}
