/**
 * Per-request observability for the edge node's HTTP server: a request id (the client's
 * `x-request-id`, else a fresh one, echoed back in the `x-request-id` response header), what the
 * API layer learns about the request while it runs (model, tokens, TTFT, finish reason, error
 * code), and at its end one JSON log line on stderr plus the `vlmesh:` request metrics.
 *
 *   http.ts: beginRequest(req, res) ─► openai-api.ts: requestIdOf(res) as the completion id,
 *            observeGeneration(res, engine.stream(…)), noteError(res, code)
 *         ─► res 'close' ─► one log line {request_id, method, path, status, …} + metrics
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
  return (req, res, path) => {
    if (!observe(path)) return;
    const header = req.headers['x-request-id'];
    const given = Array.isArray(header) ? header[0] : header;
    const id = given && CLIENT_ID_RE.test(given) ? given : randomUUID().replace(/-/g, '');
    const c: RequestContext = { id, method: req.method ?? 'GET', path, start: performance.now(), servePath: 'local' };
    contexts.set(res, c);
    res.setHeader('x-request-id', id);
    res.once('close', () => {
      const seconds = (performance.now() - c.start) / 1000;
      // Closed before it finished: the client went away (vLLM counts these as 'abort').
      const disconnected = !res.writableFinished;
      const status = res.headersSent ? res.statusCode : 499;
      if (c.done && !disconnected) {
        o.metrics.recordRequest({
          path: c.servePath,
          finishReason: c.finishReason ?? 'stop',
          promptTokens: c.promptTokens ?? 0,
          completionTokens: c.completionTokens ?? 0,
          ttft: c.ttft ?? seconds,
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
      };
      sink(JSON.stringify(line));
    });
  };
}
