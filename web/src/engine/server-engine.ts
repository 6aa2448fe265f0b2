/**
 * The server engine: the `Engine` interface over an edge node's OpenAI-compatible
 * `POST /v1/chat/completions` with `stream: true`.
 *
 *   GenerationRequest ─► OpenAI body (images and the video file as data: URLs) ─► fetch
 *     ─► SSE chunks (sse.ts, any chunking) ─► 'delta' events ─► usage chunk + [DONE] ─► 'done'
 *
 * Aborting the request's signal aborts the fetch and ends the stream with finishReason 'abort'.
 * A non-200 answer, or an error object inside the stream, throws `ServerEngineError` carrying the
 * OpenAI error fields (`message`, `type`, `code`, `param`) so the page can show the server's words.
 */
import type { Engine, EngineStats, GenerationEvent, GenerationRequest } from '../../../shared/engine/engine.ts';
import { VlmeshError } from '../../../shared/errors.ts';
import type { ChatContentPart } from '../../../shared/text/chat-template.ts';
import { readSse } from '../sse.ts';
import { dataUrl, imageMimeType, type WebGenerationRequest } from './web-request.ts';

/** The server refused or failed a request; the fields are those of its OpenAI error body. */
export class ServerEngineError extends VlmeshError {
  /** HTTP status, 0 when the server could not be reached or the stream broke. */
  readonly status: number;
  readonly type: string;
  readonly apiCode: string | null;
  readonly param: string | null;
  constructor(o: { status: number; message: string; type?: string; code?: string | null; param?: string | null }, options?: { cause?: unknown }) {
    super('SERVER_ENGINE', o.message, options);
    this.status = o.status;
    this.type = o.type ?? 'server_error';
    this.apiCode = o.code ?? null;
    this.param = o.param ?? null;
  }
}

export interface ServerEngineOptions {
  /** Base URL of the edge node (its `/v1/` lives below). Default: this page's origin. */
  baseUrl?: string;
  /** `Authorization: Bearer` key, when the node requires one. */
  apiKey?: string;
  /** Model id to request; default: the first of `GET /v1/models`. */
  model?: string;
  /** The fetch to use (tests may pass one bound to another origin). Default: globalThis.fetch. */
  fetch?: typeof fetch;
}

/** One OpenAI content part as sent. */
type OpenAiPart =
  | { type: 'text'; text: string }
  | { type: 'image_url'; image_url: { url: string } }
  | { type: 'video_url'; video_url: { url: string } };

interface OpenAiMessage {
  role: string;
  content: string | OpenAiPart[] | null;
  [key: string]: unknown;
}

/**
 * The JSON body for a request. Exported for tests and for callers that want to send the same
 * request themselves.
 *
 * @example
 * const body = toChatCompletionBody('m', { id: '1', messages: [{ role: 'user', content: 'hi' }], images: [], sampling });
 */
export function toChatCompletionBody(model: string, request: WebGenerationRequest): Record<string, unknown> {
  let imageIndex = 0;
  const messages: OpenAiMessage[] = request.messages.map((m) => {
    const { content, ...rest } = m;
    if (!Array.isArray(content)) return { ...rest, role: m.role, content: content ?? null };
    const parts: OpenAiPart[] = content.map((p: ChatContentPart): OpenAiPart => {
      if (p.type === 'image') {
        const img = request.images[imageIndex++];
        if (!img) throw new ServerEngineError({ status: 0, message: 'an image part has no image', type: 'invalid_request_error' });
        return { type: 'image_url', image_url: { url: dataUrl(img.bytes, imageMimeType(img.bytes, img.mimeType)) } };
      }
      if (p.type === 'video') {
        const v = request.videoFile;
        if (!v) throw new ServerEngineError({ status: 0, message: 'the server engine needs the video file, not decoded frames', type: 'invalid_request_error' });
        return { type: 'video_url', video_url: { url: dataUrl(v.bytes, v.mimeType || 'video/mp4') } };
      }
      return { type: 'text', text: typeof p.text === 'string' ? p.text : '' };
    });
    return { ...rest, role: m.role, content: parts };
  });
  const s = request.sampling;
  const body: Record<string, unknown> = { model, messages, stream: true, stream_options: { include_usage: true } };
  if (!s.maxTokensAuto) body.max_tokens = s.maxTokens;
  body.temperature = s.temperature;
  if (s.topP !== 1) body.top_p = s.topP;
  if (s.topK > 0) body.top_k = s.topK;
  if (s.seed !== undefined) body.seed = s.seed;
  if (s.presencePenalty) body.presence_penalty = s.presencePenalty;
  if (s.frequencyPenalty) body.frequency_penalty = s.frequencyPenalty;
  if (s.repetitionPenalty !== undefined && s.repetitionPenalty !== 1) body.repetition_penalty = s.repetitionPenalty;
  if (s.stop?.length) body.stop = s.stop;
  if (request.tools?.length) body.tools = request.tools;
  if (request.priority) body.priority = request.priority;
  if (request.sessionId) body.session_id = request.sessionId;
  if (request.truncatePrompt) body.truncate_prompt = request.truncatePrompt;
  return body;
}

/** The error of an OpenAI error body (or a readable stand-in when the body is something else). */
async function errorFromResponse(res: Response): Promise<ServerEngineError> {
  const text = await res.text().catch(() => '');
  try {
    const body = JSON.parse(text) as { error?: { message?: unknown; type?: unknown; code?: unknown; param?: unknown } };
    const e = body.error;
    if (e && typeof e.message === 'string') {
      return new ServerEngineError({
        status: res.status,
        message: e.message,
        type: typeof e.type === 'string' ? e.type : undefined,
        code: typeof e.code === 'string' ? e.code : null,
        param: typeof e.param === 'string' ? e.param : null,
      });
    }
  } catch {
    // not JSON: fall through
  }
  const snippet = text.trim().slice(0, 200);
  return new ServerEngineError({ status: res.status, message: `the server answered ${res.status} ${res.statusText}${snippet ? `: ${snippet}` : ''}` });
}

const isAbort = (e: unknown) => (e as { name?: string } | null)?.name === 'AbortError';

/**
 * An `Engine` backed by an edge node's streaming chat API.
 *
 * @example
 * const engine = await openServerEngine({});
 * for await (const ev of engine.stream(request)) if (ev.kind === 'delta') show(ev.text);
 */
export class ServerEngine implements Engine {
  readonly modelId: string;
  private readonly base: string;
  private readonly apiKey: string | undefined;
  private readonly fetchFn: typeof fetch;
  private readonly inFlight = new Set<AbortController>();

  constructor(o: ServerEngineOptions & { model: string }) {
    this.modelId = o.model;
    this.base = normalizeBase(o.baseUrl);
    this.apiKey = o.apiKey || undefined;
    this.fetchFn = o.fetch ?? ((input, init) => globalThis.fetch(input, init));
  }

  stats(): EngineStats {
    return { running: this.inFlight.size, waiting: 0, kvUsage: 0 };
  }

  async close(): Promise<void> {
    for (const c of this.inFlight) c.abort();
    this.inFlight.clear();
  }

  async *stream(request: GenerationRequest): AsyncGenerator<GenerationEvent> {
    const body = toChatCompletionBody(this.modelId, request as WebGenerationRequest);
    const controller = new AbortController();
    const onAbort = () => controller.abort();
    if (request.signal?.aborted) controller.abort();
    request.signal?.addEventListener('abort', onAbort, { once: true });
    this.inFlight.add(controller);
    const t0 = performance.now();
    let ttft = 0;
    let deltas = 0;
    let finishReason: 'stop' | 'length' | 'abort' = 'stop';
    let usage: { prompt_tokens?: number; completion_tokens?: number } | null = null;
    const aborted = () => ({
      kind: 'done' as const,
      finishReason: 'abort' as const,
      promptTokens: usage?.prompt_tokens ?? 0,
      completionTokens: usage?.completion_tokens ?? deltas,
      ttft,
    });
    try {
      let res: Response;
      try {
        res = await this.fetchFn(`${this.base}v1/chat/completions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', accept: 'text/event-stream', ...(this.apiKey ? { authorization: `Bearer ${this.apiKey}` } : {}) },
          body: JSON.stringify(body),
          signal: controller.signal,
        });
      } catch (e) {
        if (controller.signal.aborted) {
          yield aborted();
          return;
        }
        throw new ServerEngineError({ status: 0, message: `cannot reach the server: ${(e as Error).message}` }, { cause: e });
      }
      if (!res.ok) throw await errorFromResponse(res);
      if (!res.body) throw new ServerEngineError({ status: res.status, message: 'the server sent no body' });
      let sawDone = false;
      try {
        for await (const ev of readSse(res.body)) {
          if (ev.data === '[DONE]') {
            sawDone = true;
            break;
          }
          const chunk = parseChunk(ev.data);
          if (chunk.error) throw new ServerEngineError({ status: res.status, message: chunk.error.message, type: chunk.error.type, code: chunk.error.code, param: chunk.error.param });
          if (chunk.usage) usage = chunk.usage;
          const choice = chunk.choices?.[0];
          const text = choice?.delta?.content;
          if (typeof text === 'string' && text !== '') {
            if (deltas === 0) ttft = (performance.now() - t0) / 1000;
            deltas++;
            yield { kind: 'delta', text, tokenIds: [] };
          }
          if (choice?.finish_reason) finishReason = choice.finish_reason === 'length' ? 'length' : 'stop';
        }
      } catch (e) {
        if (controller.signal.aborted || isAbort(e)) {
          yield aborted();
          return;
        }
        if (e instanceof ServerEngineError) throw e;
        throw new ServerEngineError({ status: 0, message: `the answer stream broke: ${(e as Error).message}` }, { cause: e });
      }
      if (controller.signal.aborted) {
        yield aborted();
        return;
      }
      if (!sawDone) throw new ServerEngineError({ status: 0, message: 'the answer stream ended before [DONE]' });
      yield {
        kind: 'done',
        finishReason,
        promptTokens: usage?.prompt_tokens ?? 0,
        completionTokens: usage?.completion_tokens ?? deltas,
        ttft,
      };
    } finally {
      request.signal?.removeEventListener('abort', onAbort);
      this.inFlight.delete(controller);
      controller.abort();
    }
  }
}

interface ChunkJson {
  choices?: { delta?: { content?: unknown }; finish_reason?: string | null }[];
  usage?: { prompt_tokens?: number; completion_tokens?: number } | null;
  error?: { message: string; type?: string; code?: string | null; param?: string | null };
}

function parseChunk(data: string): ChunkJson {
  let v: unknown;
  try {
    v = JSON.parse(data);
  } catch {
    throw new ServerEngineError({ status: 0, message: `the server sent a malformed event: ${data.slice(0, 120)}` });
  }
  if (typeof v !== 'object' || v === null) throw new ServerEngineError({ status: 0, message: `the server sent a malformed event: ${data.slice(0, 120)}` });
  const o = v as ChunkJson & { error?: unknown };
  if (o.error !== undefined) {
    const e = o.error as { message?: unknown; type?: unknown; code?: unknown; param?: unknown };
    return {
      error: {
        message: typeof e?.message === 'string' ? e.message : 'the server reported an error',
        type: typeof e?.type === 'string' ? e.type : undefined,
        code: typeof e?.code === 'string' ? e.code : null,
        param: typeof e?.param === 'string' ? e.param : null,
      },
    };
  }
  return o;
}

function normalizeBase(baseUrl: string | undefined): string {
  const base = baseUrl ?? (typeof location !== 'undefined' ? location.origin : 'http://127.0.0.1:8080');
  return base.endsWith('/') ? base : `${base}/`;
}

/**
 * Connects to an edge node: asks `GET /v1/models` for the model id unless one is given.
 *
 * @example
 * const engine = await openServerEngine({ apiKey: settings.apiKey });
 */
export async function openServerEngine(o: ServerEngineOptions = {}): Promise<ServerEngine> {
  if (o.model) return new ServerEngine({ ...o, model: o.model });
  const f = o.fetch ?? ((input: RequestInfo | URL, init?: RequestInit) => globalThis.fetch(input, init));
  const base = normalizeBase(o.baseUrl);
  let res: Response;
  try {
    res = await f(`${base}v1/models`, { headers: o.apiKey ? { authorization: `Bearer ${o.apiKey}` } : {} });
  } catch (e) {
    throw new ServerEngineError({ status: 0, message: `cannot reach the server: ${(e as Error).message}` }, { cause: e });
  }
  if (!res.ok) throw await errorFromResponse(res);
  const list = (await res.json()) as { data?: { id?: unknown }[] };
  const id = list.data?.find((m) => typeof m.id === 'string')?.id;
  if (typeof id !== 'string') {
    throw new ServerEngineError({ status: 503, type: 'service_unavailable_error', code: 'no_model', message: 'the server has no model loaded (start it with --model)' });
  }
  return new ServerEngine({ ...o, model: id });
}
