/**
 * The edge node's HTTP server: the web app (`/`, `/donate`, `/kiosk`; web-app.ts) with the doctor
 * page at `/doctor`, `/health`, `/metrics` (Prometheus), the adapter report, the served model's
 * files for in-browser engines (`/models/<name>/<file>`; model-files.ts), the donor list of the
 * coordinator (`/v1/mesh`; mesh-registry.ts) and the OpenAI-compatible API under `/v1/`
 * (openai-api.ts). Every `/v1/` request gets an `x-request-id` and one JSON log line on stderr
 * (log.ts). With a cloud fallback, `/health` also shows the upstream's state
 * (`fallback: {url, healthy, lastError, …}`, never its key) and `/metrics` its health gauge.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { fileURLToPath } from 'node:url';
import { PROMETHEUS_CONTENT_TYPE, ServingMetrics } from '../../shared/engine/metrics.ts';
import type { DoctorReport } from '../cli/doctor.ts';
import { type LogSink, requestObserver } from './log.ts';
import { DonorRegistry, meshHandler, type PipelineView } from './mesh-registry.ts';
import { modelFilesHandler, modelFilesPath } from './model-files.ts';
import { createOpenAiApi, type OpenAiApiOptions } from './openai-api.ts';
import { webAppHandler } from './web-app.ts';

export interface ServeOptions {
  host?: string;
  port?: number;
  /** Directory of static files (defaults to the package's public/). */
  publicDir?: string;
  /** The built web app (defaults to the package's dist/web). */
  webDir?: string;
  /** `--kiosk`: `/` serves the kiosk page. Default false. */
  kiosk?: boolean;
  /** Seconds without interaction before the kiosk clears its conversation. Default 120. */
  kioskIdleSeconds?: number;
  /** The served model's directory and name: its files are published under `/models/<name>/`. */
  modelFiles?: { dir: string; name: string } | null;
  /** The coordinator's donor list (default: a new, empty one). */
  donors?: DonorRegistry;
  /** Produces the adapter report shown at `/api/doctor`. */
  doctor: () => Promise<DoctorReport>;
  /** The `/v1/` API: its engine (null without a model), keys and limits. Default: no model. */
  api?: OpenAiApiOptions;
  /** Bytes of GPU memory the engine's context holds, for `vlmesh:gpu_memory_bytes`. */
  gpuMemoryBytes?: () => number | null;
  /** Where per-request log lines go. Default: stderr. */
  logSink?: LogSink;
  /**
   * The mesh (`--mesh-token`): the PeerJS signaling server under `/peerjs` (the token is its key),
   * and the coordinator's stages and hops in `GET /v1/mesh`.
   */
  mesh?: { token: string; pipeline?: PipelineView };
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function errorJson(message: string, type: string, code: string) {
  return { error: { message, type, param: null, code } };
}

/** The mesh signaling of a server started with `mesh` (its sockets must close before the server can). */
const signalingOf = new WeakMap<Server, { close(): void }>();

/**
 * Stops a server started by `startServer`: closes the mesh's signaling sockets and every HTTP
 * connection, and resolves once the server is closed.
 */
export function stopServer(server: Server): Promise<void> {
  signalingOf.get(server)?.close();
  server.closeAllConnections?.();
  return new Promise((resolve) => server.close(() => resolve()));
}

/**
 * Starts the server and resolves once it listens.
 *
 * @example
 * const server = await startServer({ port: 8080, doctor: doctorReport });
 */
export async function startServer(options: ServeOptions): Promise<Server> {
  const publicDir = options.publicDir ?? fileURLToPath(new URL('../../public/', import.meta.url));
  const webDir = options.webDir ?? fileURLToPath(new URL('../../dist/web/', import.meta.url));
  const modelFiles = options.modelFiles ?? null;
  const app = webAppHandler({
    webDir,
    publicDir,
    kiosk: options.kiosk ?? false,
    kioskIdleSeconds: options.kioskIdleSeconds ?? 120,
    model: modelFiles ? { name: modelFiles.name, filesPath: modelFilesPath(modelFiles.name) } : null,
  });
  const models = modelFilesHandler(modelFiles);
  const mesh = meshHandler({ registry: options.donors ?? new DonorRegistry(), apiKeys: options.api?.apiKeys ?? [], pipeline: options.mesh?.pipeline });
  let cachedReport: Promise<DoctorReport> | null = null;
  const api = createOpenAiApi(options.api ?? { engine: null });
  const fallback = options.api?.fallback ?? null;
  const meshPipeline = options.mesh?.pipeline;
  const metrics = new ServingMetrics({
    engineStats: () => options.api?.engine?.stats() ?? null,
    gpuMemoryBytes: options.gpuMemoryBytes,
    ...(fallback ? { fallbackHealthy: () => fallback.healthy } : {}),
    ...(meshPipeline ? { meshHops: () => meshPipeline.hops() } : {}),
  });
  const observe = requestObserver({ metrics, sink: options.logSink, ...(meshPipeline ? { enginePath: 'mesh' as const } : {}) });
  let signaling: { handle(req: IncomingMessage, res: ServerResponse): boolean; close(): void } | null = null;
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    if (signaling?.handle(req, res)) return;
    const url = new URL(req.url ?? '/', 'http://localhost');
    const path = url.pathname;
    observe(req, res, path);
    const notFound = () => sendJson(res, 404, errorJson(`no such path ${path}`, 'invalid_request_error', 'not_found'));
    const failed = (e: unknown) => {
      if (res.headersSent) res.destroy();
      else sendJson(res, 500, errorJson(String((e as Error).message), 'server_error', 'internal_error'));
    };
    if (path === '/v1/mesh' || path.startsWith('/v1/mesh/')) {
      mesh(req, res, path).catch(failed);
      return;
    }
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
    if (path.startsWith('/models/')) {
      models(req, res, path, notFound).catch(failed);
      return;
    }
    app(req, res, path).then((answered) => {
      if (!answered) notFound();
    }, failed);
  });
  if (options.mesh) {
    // Loaded only for the mesh: PeerJS's server brings express along.
    const { mountMeshSignaling } = await import('../mesh/signaling.ts');
    const mounted = mountMeshSignaling(server, { token: options.mesh.token });
    signaling = mounted;
    signalingOf.set(server, mounted);
  }
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 8080, options.host ?? '127.0.0.1', () => resolve());
  });
  return server;
}
