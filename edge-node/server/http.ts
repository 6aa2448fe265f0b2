/**
 * The edge node's HTTP server: the doctor page, `/health`, `/metrics` (Prometheus), the adapter
 * report, and the OpenAI-compatible API under `/v1/` (openai-api.ts); the chat UI and mesh
 * signaling mount here as they land. Every `/v1/` request gets an `x-request-id` and one JSON log
 * line on stderr (log.ts). With a cloud fallback, `/health` also shows the upstream's state
 * (`fallback: {url, healthy, lastError, …}`, never its key) and `/metrics` its health gauge.
 */
import { readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { extname, join, normalize, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PROMETHEUS_CONTENT_TYPE, ServingMetrics } from '../../shared/engine/metrics.ts';
import type { DoctorReport } from '../cli/doctor.ts';
import { type LogSink, requestObserver } from './log.ts';
import { createOpenAiApi, type OpenAiApiOptions } from './openai-api.ts';

export interface ServeOptions {
  host?: string;
  port?: number;
  /** Directory of static files (defaults to the package's public/). */
  publicDir?: string;
  /** Produces the adapter report shown at `/api/doctor`. */
  doctor: () => Promise<DoctorReport>;
  /** The `/v1/` API: its engine (null without a model), keys and limits. Default: no model. */
  api?: OpenAiApiOptions;
  /** Bytes of GPU memory the engine's context holds, for `vlmesh:gpu_memory_bytes`. */
  gpuMemoryBytes?: () => number | null;
  /** Where per-request log lines go. Default: stderr. */
  logSink?: LogSink;
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
};

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function errorJson(message: string, type: string, code: string) {
  return { error: { message, type, param: null, code } };
}

/**
 * Starts the server and resolves once it listens.
 *
 * @example
 * const server = await startServer({ port: 8080, doctor: doctorReport });
 */
export async function startServer(options: ServeOptions): Promise<Server> {
  const publicDir = options.publicDir ?? fileURLToPath(new URL('../../public/', import.meta.url));
  let cachedReport: Promise<DoctorReport> | null = null;
  const api = createOpenAiApi(options.api ?? { engine: null });
  const fallback = options.api?.fallback ?? null;
  const metrics = new ServingMetrics({
    engineStats: () => options.api?.engine?.stats() ?? null,
    gpuMemoryBytes: options.gpuMemoryBytes,
    ...(fallback ? { fallbackHealthy: () => fallback.healthy } : {}),
  });
  const observe = requestObserver({ metrics, sink: options.logSink });
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const path = url.pathname;
    observe(req, res, path);
    if (path === '/v1' || path.startsWith('/v1/')) {
      api(req, res, path);
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      sendJson(res, 405, errorJson(`method ${req.method} is not allowed on ${path}`, 'invalid_request_error', 'method_not_allowed'));
      return;
    }
    if (path === '/health') {
      // Alive is 200 either way; 'degraded' when neither a local model nor the upstream can serve.
      const upstream = fallback?.health();
      const degraded = upstream !== undefined && !upstream.healthy && !options.api?.engine;
      sendJson(res, 200, { status: degraded ? 'degraded' : 'ok', ...(upstream ? { fallback: upstream } : {}) });
      return;
    }
    if (path === '/metrics') {
      const text = metrics.render();
      res.writeHead(200, { 'content-type': PROMETHEUS_CONTENT_TYPE, 'content-length': Buffer.byteLength(text) });
      res.end(req.method === 'HEAD' ? undefined : text);
      return;
    }
    if (path === '/api/doctor') {
      cachedReport ??= options.doctor();
      cachedReport.then(
        (r) => sendJson(res, 200, r),
        (e: unknown) => sendJson(res, 500, errorJson(String((e as Error).message), 'server_error', 'doctor_failed')),
      );
      return;
    }
    const file = path === '/' ? 'doctor.html' : path.slice(1);
    const full = normalize(join(publicDir, file));
    if (!full.startsWith(publicDir.endsWith(sep) ? publicDir : publicDir + sep)) {
      sendJson(res, 404, errorJson(`no such path ${path}`, 'invalid_request_error', 'not_found'));
      return;
    }
    readFile(full).then(
      (data) => {
        res.writeHead(200, { 'content-type': TYPES[extname(full)] ?? 'application/octet-stream' });
        res.end(req.method === 'HEAD' ? undefined : data);
      },
      () => sendJson(res, 404, errorJson(`no such path ${path}`, 'invalid_request_error', 'not_found')),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 8080, options.host ?? '127.0.0.1', () => resolve());
  });
  return server;
}
