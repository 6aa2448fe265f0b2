/**
 * Per-request observability for the edge node's HTTP server: a request id (the client's
 * `x-request-id`, else a fresh one, echoed back in the `x-request-id` response header), what the
 * API layer learns about the request while it runs (model, tokens, TTFT, finish reason, error
 * code), and at its end one JSON log line on stderr plus the `vlmesh:` request metrics.
 *
 *   http.ts: beginRequest(req, res) ─► openai-api.ts: requestIdOf(res) as the completion id,
 *            observeGeneration(res, engine.stream(…)), noteError(res, code),
 *            or, sent upstream: noteFallback(res, …) ─► noteUpstreamResult(res, …)
 *         ─► res 'close' ─► one log line {request_id, method, path, status, served_by, …} + metrics
 *
 * `served_by` (the metrics' `path` label) says which path answered: `local` (this node's engine),
 * `mesh` (a mesh coordinator's engine: its peers ran the layers) or `fallback` (the cloud
 * upstream; `fallback_reason` says why it went there).
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { GenerationEvent } from '../../shared/engine/engine.ts';
import type { ServePath, ServingMetrics } from '../../shared/engine/metrics.ts';
import { VlmeshError } from '../../shared/errors.ts';

/** What is known about one request; filled in as it runs. */
export interface RequestContext {
  id: string;
  method: string;
  path: string;
  /** `performance.now()` at arrival. */
  start: number;
  servePath: ServePath;
  /** The path of this node's own engine (`local`, or `mesh` on a mesh coordinator). */
  enginePath: ServePath;
  model?: string;
  promptTokens?: number;
  completionTokens?: number;
  /** Seconds to the first token, as the engine measured it. */
  ttft?: number;
  finishReason?: string;
  /** The API error code when the answer was an error (or a stream broke). */
  errorCode?: string;
  /** True once a generation reached its `done` event. */
  done?: boolean;
  /** Why the request was sent to the fallback upstream (even if it could not be reached). */
  fallbackReason?: string;
  /** Why the fallback upstream could not take it. */
  upstreamError?: string;
}

/** One request's log line. Keys are snake_case, absent facts are left out. */
export interface RequestLogLine {
  ts: string;
  level: 'info' | 'warn' | 'error';
  msg: 'request';
  request_id: string;
  method: string;
  path: string;
  status: number;
  duration_ms: number;
  model?: string;
  prompt_tokens?: number;
  completion_tokens?: number;
  ttft_ms?: number;
  finish_reason?: string;
  error_code?: string;
  /** Which path answered: `local`, `mesh` or `fallback`. */
  served_by: ServePath;
  fallback_reason?: string;
  upstream_error?: string;
}

/** Where log lines go (stderr by default; tests pass their own). */
export type LogSink = (line: string) => void;

export const stderrSink: LogSink = (line) => {
  process.stderr.write(`${line}\n`);
};

const contexts = new WeakMap<ServerResponse, RequestContext>();

/** A client-sent id is kept when it is short printable ASCII; anything else gets a fresh one. */
const CLIENT_ID_RE = /^[\x21-\x7e]{1,128}$/;

/** The request id of a response begun with `beginRequest`, if any. */
export function requestIdOf(res: ServerResponse): string | undefined {
  return contexts.get(res)?.id;
}

/** Notes the API error code a response carries (its status is read from the response). */
export function noteError(res: ServerResponse, code: string): void {
  const c = contexts.get(res);
  if (c) c.errorCode = code;
}

/** Notes that the request is being forwarded to the fallback upstream, why, and under which model name. */
export function noteFallback(res: ServerResponse, reason: string, model: string): void {
  const c = contexts.get(res);
  if (!c) return;
  c.servePath = 'fallback';
  c.fallbackReason = reason;
  c.model = model;
  // A local failure that sent it upstream is not this request's outcome any more.
  c.errorCode = undefined;
  c.upstreamError = undefined;
}

/**
 * Notes that the fallback upstream could not take the request. `nothingLocal`: the answer is
 * the fallback's own 503 (counted under `fallback`); else the local answer stands (`local`).
 */
export function noteFallbackUnreachable(res: ServerResponse, reason: string, error: string, nothingLocal: boolean): void {
  const c = contexts.get(res);
  if (!c) return;
  c.servePath = nothingLocal ? 'fallback' : c.enginePath;
  c.fallbackReason = reason;
  c.upstreamError = error;
}

/** What the upstream answered (see fallback.ts `UpstreamResult`). */
export interface UpstreamFacts {
  status: number;
  done: boolean;
  finishReason?: string;
  promptTokens?: number;
  completionTokens?: number;
  ttft?: number;
  errorCode?: string;
}

/** Notes the upstream's answer to a forwarded request; call it before the response ends. */
export function noteUpstreamResult(res: ServerResponse, r: UpstreamFacts): void {
  const c = contexts.get(res);
  if (!c) return;
  c.done = r.done;
  if (r.finishReason !== undefined) c.finishReason = r.finishReason;
  if (r.promptTokens !== undefined) c.promptTokens = r.promptTokens;
  if (r.completionTokens !== undefined) c.completionTokens = r.completionTokens;
  if (r.ttft !== undefined) c.ttft = r.ttft;
  if (r.errorCode !== undefined) c.errorCode = r.errorCode;
}

/**
 * Passes an engine's events through, noting the model, token counts, TTFT and finish reason in
 * the response's context; a stream that throws notes its error code.
 */
export async function* observeGeneration(
  res: ServerResponse,
  modelId: string,
  events: AsyncIterable<GenerationEvent>,
): AsyncGenerator<GenerationEvent> {
  const c = contexts.get(res);
  if (c) c.model = modelId;
  try {
    for await (const ev of events) {
      if (c && ev.kind === 'done') {
        c.done = true;
        c.promptTokens = ev.promptTokens;
        c.completionTokens = ev.completionTokens;
        c.ttft = ev.ttft;
        c.finishReason = ev.finishReason;
      }
      yield ev;
    }
  } catch (e) {
    if (c && !c.errorCode) c.errorCode = e instanceof VlmeshError ? e.code : 'internal_error';
    throw e;
  }
}

export interface RequestObserverOptions {
  metrics: ServingMetrics;
  /** Default: one line per request on stderr. */
  sink?: LogSink;
  /** Which requests get a log line and metrics; default: the API under `/v1/`. */
  observe?: (path: string) => boolean;
  /** The `path` label of what this node's engine serves: `local` (default), or `mesh` on a mesh coordinator. */
  enginePath?: ServePath;
}

const round = (x: number, digits: number) => Math.round(x * 10 ** digits) / 10 ** digits;

/**
 * Makes the per-request hook of the server: it gives the request an id, sets `x-request-id`,
 * and when the response closes writes the log line and records the metrics.
 *
 * @example
 * const begin = requestObserver({ metrics });
 * createServer((req, res) => { begin(req, res, url.pathname); … });
 */
export function requestObserver(o: RequestObserverOptions): (req: IncomingMessage, res: ServerResponse, path: string) => void {
  const sink = o.sink ?? stderrSink;
  const observe = o.observe ?? ((p: string) => p === '/v1' || p.startsWith('/v1/'));
  const enginePath = o.enginePath ?? 'local';
  return (req, res, path) => {
    if (!observe(path)) return;
    const header = req.headers['x-request-id'];
    const given = Array.isArray(header) ? header[0] : header;
    const id = given && CLIENT_ID_RE.test(given) ? given : randomUUID().replace(/-/g, '');
    const c: RequestContext = { id, method: req.method ?? 'GET', path, start: performance.now(), servePath: enginePath, enginePath };
    contexts.set(res, c);
    res.setHeader('x-request-id', id);
    res.once('close', () => {
      const seconds = (performance.now() - c.start) / 1000;
      // Closed before it finished: the client went away (vLLM counts these as 'abort').
      const disconnected = !res.writableFinished;
      const status = res.headersSent ? res.statusCode : 499;
      if (c.done && !disconnected) {
        const local = c.servePath !== 'fallback';
        // An upstream's answer may not say its token counts (a stream without include_usage) or
        // when its first token came (a non-streamed answer): those stay unrecorded.
        o.metrics.recordRequest({
          path: c.servePath,
          finishReason: c.finishReason ?? 'stop',
          promptTokens: c.promptTokens ?? (local ? 0 : undefined),
          completionTokens: c.completionTokens ?? (local ? 0 : undefined),
          ttft: c.ttft ?? (local ? seconds : undefined),
          e2e: seconds,
        });
      } else if (disconnected && c.model !== undefined && !c.errorCode) {
        c.finishReason = 'abort';
        o.metrics.success.inc({ path: c.servePath, finished_reason: 'abort' });
      } else if (status >= 400 || c.errorCode) {
        o.metrics.recordError(c.servePath, status, c.errorCode ?? `http_${status}`);
      }
      const line: RequestLogLine = {
        ts: new Date().toISOString(),
        level: status >= 500 || (c.errorCode && status < 400) ? 'error' : status >= 400 ? 'warn' : 'info',
        msg: 'request',
        request_id: c.id,
        method: c.method,
        path: c.path,
        status,
        duration_ms: round(seconds * 1000, 1),
        ...(c.model !== undefined ? { model: c.model } : {}),
        ...(c.promptTokens !== undefined ? { prompt_tokens: c.promptTokens } : {}),
        ...(c.completionTokens !== undefined ? { completion_tokens: c.completionTokens } : {}),
        ...(c.ttft !== undefined ? { ttft_ms: round(c.ttft * 1000, 1) } : {}),
        ...(c.finishReason !== undefined ? { finish_reason: c.finishReason } : {}),
        ...(c.errorCode !== undefined ? { error_code: c.errorCode } : {}),
        served_by: c.servePath,
        ...(c.fallbackReason !== undefined ? { fallback_reason: c.fallbackReason } : {}),
        ...(c.upstreamError !== undefined ? { upstream_error: c.upstreamError } : {}),
      };
      sink(JSON.stringify(line));
    });
  };
}
