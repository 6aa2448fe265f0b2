/**
 * The OpenAI-compatible API under `/v1/` (as vLLM serves it): `GET /v1/models` and
 * `POST /v1/chat/completions`, streaming (SSE `chat.completion.chunk` events, then
 * `data: [DONE]`) or not. Requests are validated by shared/api before they reach the `Engine`;
 * every failure is `{"error":{"message","type","param","code"}}` with its 4xx/5xx status.
 *
 *   request ─► auth (401) ─► route (404/405) ─► rate limit (429) ─► body ≤ limit (413) ─► JSON (400)
 *           ─► fields (400) ─► model (404) ─► queue full (429) ─► engine: first event or error
 *              (400 bad image / prompt too long for the context / 500) ─► answer
 *
 * With a cloud fallback (fallback.ts), the outcomes this node cannot serve go upstream instead,
 * while the upstream is healthy: no model loaded, a model other than the local one, `max_tokens`
 * or the prompt over the local context, queue full, and an engine failure before the first byte
 * reached the client. Client errors (401, rate limit, bad JSON or fields, bad images) never do.
 * When the upstream cannot be reached the local error stands, or 503 `upstream_unavailable` when
 * there was nothing local to say.
 *
 * A client that disconnects aborts its generation (local or upstream), so the queue moves on.
 */
import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  type ChatCompletion,
  type ChatCompletionChunk,
  type CompletionUsage,
  type FinishReason,
  type ParsedChatRequest,
  parseChatRequest,
  parsePriority,
} from '../../shared/api/chat-completions.ts';
import { ApiError, ApiErrorType } from '../../shared/api/errors.ts';
import { extractToolCalls, ToolCallStreamParser } from '../../shared/api/tool-calls.ts';
import type { Engine, GenerationEvent } from '../../shared/engine/engine.ts';
import { VlmeshError } from '../../shared/errors.ts';
import { type FallbackReason, fallbackReasonFor, isMaxTokensError, type UpstreamFallback } from './fallback.ts';
import { noteError, noteFallback, noteFallbackUnreachable, noteUpstreamResult, observeGeneration, requestIdOf } from './log.ts';
import { type MediaOptions, resolveRequestMedia } from './media-resolve.ts';
import { RateLimiter } from './rate-limit.ts';

export interface OpenAiApiOptions {
  /** The engine, or null when the server runs without a model (chat answers 503). */
  engine: Engine | null;
  /** Accepted `Authorization: Bearer` keys; empty = no authentication. */
  apiKeys?: readonly string[];
  /** Largest request body in bytes (413 above). Default 32 MiB. */
  maxBodyBytes?: number;
  /** `max_tokens` when a request gives none. Default 1024. */
  defaultMaxTokens?: number;
  /** Largest `max_tokens` accepted. Default 32768. */
  maxTokensLimit?: number;
  /** Fetching `http(s):` media and decoding video; absent = inline images only. */
  media?: MediaOptions;
  /** Most requests waiting in the engine's queue; past it, 429 `queue_full`. Default 64. */
  maxQueue?: number;
  /** Chat requests per minute per API key (per client IP without keys); absent = no limit. */
  rateLimitPerMinute?: number;
  /** The cloud fallback for what this node cannot serve; absent = none. */
  fallback?: UpstreamFallback | null;
}

/** `max_tokens` bound when a fallback upstream judges it (this node has no context to check against). */
const UNBOUNDED_MAX_TOKENS = Number.MAX_SAFE_INTEGER;

/** What a request that goes upstream with nothing local to say is told when the upstream is down. */
function upstreamUnavailable(why: string, detail: string | null, timedOut = false): ApiError {
  return new ApiError(
    timedOut ? 504 : 503,
    ApiErrorType.Unavailable,
    timedOut ? 'upstream_timeout' : 'upstream_unavailable',
    `${why}, and the fallback upstream is unavailable${detail ? `: ${detail}` : ''}; retry later`,
  );
}

export const DEFAULT_MAX_QUEUE = 64;

/** A 429 that tells the client when to come back (`Retry-After`, in seconds). */
class RetryLaterError extends ApiError {
  constructor(
    apiCode: string,
    message: string,
    readonly retryAfterS: number,
  ) {
    super(429, ApiErrorType.RateLimit, apiCode, message);
  }
}

export const DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024;

/** Image / template errors from the engine that are the request's fault, with their API code. */
const CLIENT_ERRORS: Record<string, string> = {
  UNSUPPORTED_MEDIA: 'unsupported_media_type',
  IMAGE_DECODE: 'invalid_image',
  IMAGE_TOO_LARGE: 'image_too_large',
  IMAGE_TOO_SMALL: 'image_too_small',
  ASPECT_RATIO_TOO_LARGE: 'invalid_image',
  CHAT_TEMPLATE: 'invalid_messages',
  PROMPT_EXPANSION: 'invalid_messages',
  CONTEXT_LENGTH: 'context_length_exceeded',
  STOP_STRING: 'invalid_value',
  SAMPLING: 'invalid_value',
  INVALID_SEED: 'invalid_value',
};

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)), ...headers });
  res.end(text);
}

function sendError(res: ServerResponse, e: ApiError): void {
  if (res.headersSent) return;
  noteError(res, e.apiCode);
  const headers: Record<string, string> = e.status === 401 ? { 'www-authenticate': 'Bearer' } : {};
  if (e instanceof RetryLaterError) headers['retry-after'] = String(e.retryAfterS);
  sendJson(res, e.status, e.toJSON(), headers);
}

/** Maps whatever an engine throws to an ApiError (a 400 when the request was at fault). */
function toApiError(e: unknown): ApiError {
  if (e instanceof ApiError) return e;
  // A mesh coordinator with no peers able to run the layers (the cloud fallback may take it).
  if (e instanceof VlmeshError && e.code === 'MESH_UNAVAILABLE') {
    return new ApiError(503, ApiErrorType.Unavailable, 'mesh_unavailable', `the mesh cannot serve this request now: ${e.message}`);
  }
  if (e instanceof VlmeshError && CLIENT_ERRORS[e.code]) {
    return new ApiError(400, ApiErrorType.InvalidRequest, CLIENT_ERRORS[e.code], e.message, 'messages');
  }
  const message = e instanceof Error ? e.message : String(e);
  return new ApiError(500, ApiErrorType.Server, 'internal_error', `the engine failed: ${message}`);
}

/** SHA-256 of a key, so that comparisons take the same time whatever the lengths. */
const digest = (s: string) => createHash('sha256').update(s).digest();

/** Reads the body up to `limit` bytes; past it, drains the rest and throws a 413. */
function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length']);
  return new Promise((resolve, reject) => {
    const tooLarge = () =>
      new ApiError(413, ApiErrorType.InvalidRequest, 'request_too_large', `the request body is larger than the limit of ${limit} bytes`);
    if (Number.isFinite(declared) && declared > limit) {
      // Drain what the client sends so it can read the answer (Node closes the socket after it).
      req.resume();
      reject(tooLarge());
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) over = true;
      if (over) {
        // Keep draining, but stop holding; give up on absurd streams.
        if (size > 4 * limit) req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => (over ? reject(tooLarge()) : resolve(Buffer.concat(chunks))));
    req.on('error', reject);
  });
}

/**
 * Builds the `/v1/*` handler. It answers every request it is given (404 for unknown paths).
 *
 * @example
 * const api = createOpenAiApi({ engine, apiKeys: ['sk-local'] });
 * if (url.pathname.startsWith('/v1/')) return api(req, res, url.pathname);
 */
export function createOpenAiApi(o: OpenAiApiOptions): (req: IncomingMessage, res: ServerResponse, path: string) => void {
  const keys = (o.apiKeys ?? []).map(digest);
  const maxBody = o.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const created = Math.floor(Date.now() / 1000);
  const maxQueue = o.maxQueue ?? DEFAULT_MAX_QUEUE;
  const limiter = o.rateLimitPerMinute ? new RateLimiter(o.rateLimitPerMinute) : null;
  const fallback = o.fallback ?? null;
  const parseOptions = {
    defaultMaxTokens: o.defaultMaxTokens ?? 1024,
    // Without a model here, the upstream judges max_tokens against its own context.
    maxTokensLimit: !o.engine && fallback ? UNBOUNDED_MAX_TOKENS : (o.maxTokensLimit ?? 32768),
    remoteMedia: o.media !== undefined,
  };

  const authorized = (req: IncomingMessage): boolean => {
    if (keys.length === 0) return true;
    const m = /^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? '');
    if (!m) return false;
    const got = digest(m[1].trim());
    let ok = false;
    for (const k of keys) ok = timingSafeEqual(got, k) || ok;
    return ok;
  };

  /** Whom the rate limit counts: the key (hashed) when the server has keys, else the client's IP. */
  const clientOf = (req: IncomingMessage): string => {
    const m = /^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? '');
    return keys.length && m ? `key:${digest(m[1].trim()).toString('hex')}` : `ip:${req.socket.remoteAddress ?? '?'}`;
  };

  /** The local model, then the healthy upstream's (requests for those go upstream). */
  const models = (res: ServerResponse) => {
    const data: { id: string; object: string; [key: string]: unknown }[] = o.engine
      ? [{ id: o.engine.modelId, object: 'model', created, owned_by: 'vlmesh', root: o.engine.modelId, parent: null }]
      : [];
    for (const m of fallback?.models() ?? []) if (!data.some((d) => d.id === m.id)) data.push(m);
    sendJson(res, 200, { object: 'list', data });
  };

  /**
   * Sends the request upstream. When the upstream is down or cannot be reached, the local answer
   * stands: `local` is the error this node would have given, or (a string) why this node has
   * nothing to say, which becomes a 503 `upstream_unavailable`.
   */
  const toUpstream = async (json: Record<string, unknown>, res: ServerResponse, reason: FallbackReason, local: ApiError | string): Promise<void> => {
    const standing = (detail: string | null, timedOut = false) => (typeof local === 'string' ? upstreamUnavailable(local, detail, timedOut) : local);
    if (!fallback) throw standing(null);
    if (!fallback.healthy) {
      const detail = fallback.health().lastError;
      noteFallbackUnreachable(res, reason, detail ?? 'unhealthy', typeof local === 'string');
      throw standing(detail);
    }
    noteFallback(res, reason, fallback.upstreamModel(String(json.model)));
    const outcome = await fallback.forward(json, res, { requestId: requestIdOf(res), onResult: (r) => noteUpstreamResult(res, r) });
    if (outcome.kind !== 'unreachable') return;
    noteFallbackUnreachable(res, reason, outcome.error, typeof local === 'string');
    throw standing(outcome.error, outcome.timedOut);
  };

  const chat = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const body = await readBody(req, maxBody);
    let json: unknown;
    try {
      json = JSON.parse(body.toString('utf8'));
    } catch (e) {
      throw new ApiError(400, ApiErrorType.InvalidRequest, 'invalid_json', `the request body is not valid JSON: ${(e as Error).message}`);
    }
    let parsed: ParsedChatRequest;
    // With a fallback, a max_tokens over this node's context is the upstream's to judge: when the
    // request passes without the local bound, that bound was its only fault.
    let overContext: ApiError | null = null;
    try {
      parsed = parseChatRequest(json, parseOptions);
    } catch (e) {
      if (!fallback || !isMaxTokensError(e)) throw e;
      parsed = parseChatRequest(json, { ...parseOptions, maxTokensLimit: UNBOUNDED_MAX_TOKENS });
      overContext = e;
    }
    // The scheduling class may also come from a header (the body's `priority` wins).
    const header = req.headers['x-vlmesh-priority'];
    if (!parsed.priority && typeof header === 'string') parsed.priority = parsePriority(header, 'x-vlmesh-priority');
    // parseChatRequest accepted it, so it is a JSON object.
    const request = json as Record<string, unknown>;
    const engine = o.engine;
    if (!engine) {
      if (fallback) return toUpstream(request, res, 'no_model', 'this node has no model loaded');
      throw new ApiError(
        503,
        ApiErrorType.Unavailable,
        'model_not_loaded',
        'this server runs without a model: start it with `vlmesh serve --model DIR` to serve chat completions',
      );
    }
    if (parsed.model !== engine.modelId) {
      if (fallback) return toUpstream(request, res, 'model_not_local', `the model \`${parsed.model}\` is not served by this node`);
      throw new ApiError(
        404,
        ApiErrorType.InvalidRequest,
        'model_not_found',
        `The model \`${parsed.model}\` does not exist. This server serves \`${engine.modelId}\` (see /v1/models).`,
        'model',
      );
    }
    if (overContext) return toUpstream(request, res, 'context_length_exceeded', overContext);
    // Queue full: refuse now rather than wait behind everyone (the estimate: ~1 s a request ahead).
    const waiting = engine.stats().waiting;
    if (waiting >= maxQueue) {
      const full = new RetryLaterError(
        'queue_full',
        `the server is busy: ${waiting} requests are already waiting (the limit is ${maxQueue}); retry later`,
        Math.min(60, Math.max(1, waiting)),
      );
      if (fallback) return toUpstream(request, res, 'queue_full', full);
      throw full;
    }
    // Remote images fetched and video decoded here, so their failures are still 400s.
    const resolved = await resolveRequestMedia(parsed, o.media);
    try {
      await complete(engine, resolved, res);
    } catch (e) {
      const err = toApiError(e);
      // Nothing has reached the client yet: the upstream may still answer in full.
      const reason = fallback && !res.headersSent && !res.destroyed ? fallbackReasonFor(err) : null;
      if (reason) return toUpstream(request, res, reason, err);
      throw err;
    }
  };

  const complete = async (engine: Engine, p: ParsedChatRequest, res: ServerResponse): Promise<void> => {
    // vLLM's convention: the completion id is `chatcmpl-` + the request id (x-request-id).
    const id = `chatcmpl-${requestIdOf(res) ?? randomUUID().replace(/-/g, '')}`;
    const abort = new AbortController();
    res.on('close', () => {
      if (!res.writableFinished) abort.abort();
    });
    const events = observeGeneration(
      res,
      engine.modelId,
      engine.stream({
        id,
        messages: p.messages,
        images: p.images,
        video: p.video,
        sampling: p.sampling,
        tools: p.tools,
        ...(p.truncatePrompt ? { truncatePrompt: p.truncatePrompt } : {}),
        ...(p.priority ? { priority: p.priority } : {}),
        ...(p.sessionId ? { sessionId: p.sessionId } : {}),
        signal: abort.signal,
      }),
    );
    // The first event (or a bad image / template error) comes before any byte is sent, so
    // request errors still get their status code.
    let next: IteratorResult<GenerationEvent>;
    try {
      next = await events.next();
    } catch (e) {
      throw toApiError(e);
    }
    const usageOf = (ev: Extract<GenerationEvent, { kind: 'done' }>): CompletionUsage => ({
      prompt_tokens: ev.promptTokens,
      completion_tokens: ev.completionTokens,
      total_tokens: ev.promptTokens + ev.completionTokens,
    });
    const finish = (r: string): FinishReason => (r === 'length' ? 'length' : 'stop');
    const createdAt = Math.floor(Date.now() / 1000);

    if (!p.stream) {
      let text = '';
      for (; !next.done; next = await events.next()) {
        const ev = next.value;
        if (ev.kind === 'delta') text += ev.text;
        else {
          if (abort.signal.aborted) return;
          // With tools, `<tool_call>` blocks become `tool_calls` (vLLM's hermes parser).
          const calls = p.parseToolCalls ? extractToolCalls(text) : null;
          const message: ChatCompletion['choices'][0]['message'] = calls?.toolCalls.length
            ? { role: 'assistant', content: calls.content, tool_calls: calls.toolCalls }
            : { role: 'assistant', content: text };
          const out: ChatCompletion = {
            id,
            object: 'chat.completion',
            created: createdAt,
            model: engine.modelId,
            choices: [{ index: 0, message, logprobs: null, finish_reason: calls?.toolCalls.length ? 'tool_calls' : finish(ev.finishReason) }],
            usage: usageOf(ev),
          };
          sendJson(res, 200, out);
          return;
        }
      }
      throw new ApiError(500, ApiErrorType.Server, 'internal_error', 'the engine ended without a result');
    }

    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive' });
    const send = (data: unknown) => {
      if (!res.writableEnded && !res.destroyed) res.write(`data: ${JSON.stringify(data)}\n\n`);
    };
    const chunk = (delta: ChatCompletionChunk['choices'][0]['delta'], finishReason: FinishReason | null): ChatCompletionChunk => ({
      id,
      object: 'chat.completion.chunk',
      created: createdAt,
      model: engine.modelId,
      choices: [{ index: 0, delta, logprobs: null, finish_reason: finishReason }],
      ...(p.includeUsage ? { usage: null } : {}),
    });
    send(chunk({ role: 'assistant', content: '' }, null));
    const tools = p.parseToolCalls ? new ToolCallStreamParser() : null;
    try {
      for (; !next.done; next = await events.next()) {
        if (abort.signal.aborted) break;
        const ev = next.value;
        if (ev.kind === 'delta') {
          if (tools) for (const d of tools.push(ev.text)) send(chunk(d, null));
          else if (ev.text) send(chunk({ content: ev.text }, null));
          continue;
        }
        if (tools) for (const d of tools.flush()) send(chunk(d, null));
        send(chunk({}, tools?.toolCallCount ? 'tool_calls' : finish(ev.finishReason)));
        if (p.includeUsage) {
          send({ id, object: 'chat.completion.chunk', created: createdAt, model: engine.modelId, choices: [], usage: usageOf(ev) });
        }
      }
    } catch (e) {
      // Headers are out: report the failure in the stream, as vLLM does.
      send(toApiError(e).toJSON());
    } finally {
      await events.return(undefined);
    }
    if (!res.writableEnded && !res.destroyed) res.end('data: [DONE]\n\n');
  };

  return (req, res, path) => {
    if (!authorized(req)) {
      // Same answer for a missing and a wrong key.
      sendError(res, new ApiError(401, ApiErrorType.Authentication, 'invalid_api_key', 'invalid or missing API key (send Authorization: Bearer KEY)'));
      req.resume();
      return;
    }
    const route = path.replace(/\/+$/, '');
    const wrongMethod = (allowed: string) => {
      sendError(res, new ApiError(405, ApiErrorType.InvalidRequest, 'method_not_allowed', `${req.method} is not allowed on ${route}; use ${allowed}`));
      req.resume();
    };
    if (route === '/v1/models') {
      if (req.method !== 'GET') return wrongMethod('GET');
      return models(res);
    }
    if (route === '/v1/chat/completions') {
      if (req.method !== 'POST') return wrongMethod('POST');
      const rate = limiter?.take(clientOf(req));
      if (rate && !rate.ok) {
        sendError(
          res,
          new RetryLaterError('rate_limited', `rate limit of ${o.rateLimitPerMinute} requests per minute reached; retry in ${rate.retryAfterS} s`, rate.retryAfterS),
        );
        req.resume();
        return;
      }
      chat(req, res).catch((e: unknown) => sendError(res, toApiError(e)));
      return;
    }
    sendError(res, new ApiError(404, ApiErrorType.NotFound, 'not_found', `no API route ${req.method} ${route}`));
    req.resume();
  };
}
