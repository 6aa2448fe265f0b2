/**
 * The load generator behind `vlmesh bench serve`: drives an OpenAI-compatible server (a running
 * `vlmesh serve`, or vLLM) with streamed chat completions from a fixed number of concurrent
 * clients, and summarises what each request saw.
 *
 * Per request it records, from the moment the request is sent:
 * - TTFT: until the first chunk that carries generated text (`delta.content`, or vLLM's
 *   `delta.reasoning_content`); the role-only first chunk does not count.
 * - ITL: the gaps between successive text chunks (pooled over all requests, as vLLM's
 *   `bench serve` does).
 * - E2E: until the stream ends (`data: [DONE]`).
 * - output tokens: `usage.completion_tokens` of the final chunk (`stream_options.include_usage`),
 *   or, when the server sends no usage, the number of text chunks.
 * - TPOT: `(e2e − ttft) / (output tokens − 1)`, for requests with at least two output tokens.
 *
 * Multi-turn (`turns > 1`): each client holds a conversation for `turns` requests, sending the
 * previous answers back, so later turns measure how well the server reuses the shared prefix; the
 * report then gives TTFT per turn index. A failed turn ends its conversation (there is no answer
 * to continue from); its remaining turns are counted as not sent.
 *
 * The run is bounded in count (`requests`) and in time (`timeoutMs`, or an outside abort
 * signal): at the deadline no request is launched any more, those in flight are aborted and
 * counted apart (`aborted`), and the report covers what finished.
 *
 * Percentiles are linear interpolation between closest ranks (numpy's default, which vLLM's
 * benchmark uses): for n sorted values, percentile p is at rank `p/100 · (n − 1)`.
 */
import { isIP } from 'node:net';
import { VlmeshError } from '../../shared/errors.ts';

/** The server could not be reached, or answered the preflight with an error. */
export class BenchServerError extends VlmeshError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('BENCH_SERVER', message, options);
  }
}

/** A URL that cannot be load-tested: not http(s), or not loopback without `allowRemote`. */
export class BenchUrlError extends VlmeshError {
  constructor(message: string) {
    super('BENCH_URL', message);
  }
}

// ---------------------------------------------------------------------------------------------
// Statistics
// ---------------------------------------------------------------------------------------------

/** Mean and percentiles of one metric (ms, or tokens/s), or null when there are no samples. */
export interface Stats {
  mean: number;
  p50: number;
  p90: number;
  p99: number;
}

/**
 * Percentile `p` (0..100) of ascending `sorted` values by linear interpolation between closest
 * ranks: rank `r = p/100 · (n − 1)`, value `v[⌊r⌋] + (r − ⌊r⌋) · (v[⌊r⌋+1] − v[⌊r⌋])`.
 *
 * @example
 * percentile([1, 2, 3, 4], 50) // 2.5
 * percentile([10, 20, 30, 40, 50], 90) // 46
 */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) throw new RangeError('percentile of no values');
  if (!(p >= 0 && p <= 100)) throw new RangeError(`percentile must be within 0..100, got ${p}`);
  const r = (p / 100) * (sorted.length - 1);
  const lo = Math.floor(r);
  const hi = Math.min(lo + 1, sorted.length - 1);
  return sorted[lo] + (r - lo) * (sorted[hi] - sorted[lo]);
}

/** Mean, p50, p90 and p99 of `values` (any order), or null when empty. */
export function summarize(values: readonly number[]): Stats | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const mean = sorted.reduce((s, v) => s + v, 0) / sorted.length;
  return { mean, p50: percentile(sorted, 50), p90: percentile(sorted, 90), p99: percentile(sorted, 99) };
}

// ---------------------------------------------------------------------------------------------
// Server-sent events
// ---------------------------------------------------------------------------------------------

/**
 * Incremental parser of a `text/event-stream`: feed it text in pieces cut anywhere (inside a
 * line, between `\r` and `\n`), get back the `data` of each complete event. Lines end in `\n`,
 * `\r\n` or `\r`; an event ends at a blank line; several `data:` lines join with `\n`; comments
 * (`:` lines) and other fields are ignored; one space after the colon is dropped.
 *
 * @example
 * const p = new SseParser();
 * p.push('data: {"a"'); // []
 * p.push(':1}\n\n');    // ['{"a":1}']
 */
export class SseParser {
  #buf = '';
  #data: string[] = [];

  /** Adds text; returns the data of the events it completed, in order. */
  push(text: string): string[] {
    this.#buf += text;
    const out: string[] = [];
    let start = 0;
    for (let i = 0; i < this.#buf.length; i++) {
      const c = this.#buf[i];
      if (c !== '\n' && c !== '\r') continue;
      // A '\r' at the very end may be the first half of '\r\n': wait for the next piece.
      if (c === '\r' && i === this.#buf.length - 1) break;
      this.#line(this.#buf.slice(start, i), out);
      if (c === '\r' && this.#buf[i + 1] === '\n') i++;
      start = i + 1;
    }
    this.#buf = this.#buf.slice(start);
    return out;
  }

  /** The end of the stream: a last event not closed by a blank line is dropped (as the spec says). */
  end(): string[] {
    const out: string[] = [];
    if (this.#buf === '\r') this.#line('', out);
    this.#buf = '';
    this.#data = [];
    return out;
  }

  #line(line: string, out: string[]): void {
    if (line === '') {
      if (this.#data.length > 0) out.push(this.#data.join('\n'));
      this.#data = [];
      return;
    }
    if (line.startsWith(':')) return;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    if (field !== 'data') return;
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    this.#data.push(value);
  }
}

/** The `data` payloads of an SSE response body, decoded as UTF-8 across chunk boundaries. */
export async function* sseData(body: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  const parser = new SseParser();
  const reader = body.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      yield* parser.push(decoder.decode(value, { stream: true }));
    }
    yield* parser.push(decoder.decode());
    yield* parser.end();
  } finally {
    // An early exit (error, abort) releases the connection.
    await reader.cancel().catch(() => {});
  }
}

// ---------------------------------------------------------------------------------------------
// URLs and the preflight
// ---------------------------------------------------------------------------------------------

/** True for `localhost`, 127.0.0.0/8, `::1` and IPv4-mapped 127.x addresses. */
export function isLoopbackHost(hostname: string): boolean {
  const h = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  if (h === 'localhost' || h.endsWith('.localhost')) return true;
  if (isIP(h) === 4) return h.startsWith('127.');
  if (isIP(h) === 6) {
    if (h === '::1' || h === '0:0:0:0:0:0:0:1') return true;
    // ::ffff:127.a.b.c, which URL normalises to ::ffff:7fxx:xxxx.
    const m = /^::ffff:(?:7f[0-9a-f]{2}:[0-9a-f]{1,4}|127\.\d+\.\d+\.\d+)$/.exec(h);
    return m !== null;
  }
  return false;
}

/**
 * The server's base URL (no trailing `/`, no `/v1`) from what a user typed: `http://h:p`,
 * `http://h:p/`, `http://h:p/v1`. Throws BenchUrlError for other schemes and, unless
 * `allowRemote`, for hosts that are not loopback.
 *
 * @example
 * normalizeServerUrl('http://127.0.0.1:8080/v1/') // 'http://127.0.0.1:8080'
 */
export function normalizeServerUrl(url: string, allowRemote = false): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new BenchUrlError(`not a URL: "${url}" (expected e.g. http://127.0.0.1:8080)`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new BenchUrlError(`the URL must be http:// or https://, got "${url}"`);
  if (!allowRemote && !isLoopbackHost(u.hostname)) {
    throw new BenchUrlError(`${u.hostname} is not a loopback address: the load test only drives a server on this machine (127.0.0.1, ::1, localhost); pass --allow-remote to load another host`);
  }
  u.search = '';
  u.hash = '';
  const path = u.pathname.replace(/\/+$/, '').replace(/\/v1$/, '');
  return `${u.origin}${path}`;
}

const authHeaders = (apiKey: string | undefined): Record<string, string> => (apiKey ? { authorization: `Bearer ${apiKey}` } : {});

/** Why a fetch failed, in words: the socket error's code and message when there is one. */
function fetchFailure(e: unknown): string {
  const err = e as Error & { cause?: { code?: string; message?: string } };
  const cause = err.cause;
  if (cause?.code || cause?.message) return [cause.code, cause.message].filter(Boolean).join(': ');
  return err.message ?? String(e);
}

/** The error message of an OpenAI-style error body, else the body's start. */
function errorMessageOf(text: string): string {
  try {
    const j = JSON.parse(text) as { error?: { message?: unknown } | string; message?: unknown };
    if (typeof j.error === 'string') return j.error;
    if (j.error && typeof j.error.message === 'string') return j.error.message;
    if (typeof j.message === 'string') return j.message;
  } catch {
    // not JSON
  }
  return text.slice(0, 200).trim() || '(empty body)';
}

/**
 * The models the server lists on `GET /v1/models`. Also the preflight: throws BenchServerError
 * when the server cannot be reached or answers with an error (e.g. 401 for a missing key).
 */
export async function listModels(baseUrl: string, apiKey?: string, signal?: AbortSignal): Promise<string[]> {
  const url = `${baseUrl}/v1/models`;
  let res: Response;
  try {
    res = await fetch(url, { headers: authHeaders(apiKey), signal: signal ?? AbortSignal.timeout(30_000) });
  } catch (e) {
    throw new BenchServerError(`cannot reach the server at ${url} (${fetchFailure(e)}): is it running?`, { cause: e });
  }
  const text = await res.text();
  if (!res.ok) {
    const hint = res.status === 401 ? ' (pass its key with --api-key)' : '';
    throw new BenchServerError(`GET ${url} answered ${res.status}: ${errorMessageOf(text)}${hint}`);
  }
  try {
    const j = JSON.parse(text) as { data?: { id?: unknown }[] };
    return (j.data ?? []).map((m) => m.id).filter((id): id is string => typeof id === 'string');
  } catch {
    throw new BenchServerError(`GET ${url} did not answer an OpenAI model list: ${text.slice(0, 200)}`);
  }
}

// ---------------------------------------------------------------------------------------------
// One request
// ---------------------------------------------------------------------------------------------

/** What happened to one chat request. Times are milliseconds. */
export interface RequestRecord {
  /** 0-based conversation and turn. */
  conversation: number;
  turn: number;
  outcome: 'ok' | 'failed' | 'aborted';
  /** For failures: the HTTP status ("429"), or `connection`, `stream_error`, `bad_stream`, `incomplete`. */
  errorKey?: string;
  errorMessage?: string;
  /** Sent at, from the start of the run. */
  startMs: number;
  /** Time to the first text chunk; null when none came. */
  ttftMs: number | null;
  /** Gaps between successive text chunks. */
  itlMs: number[];
  /** Send to end of stream (or to the failure). */
  e2eMs: number;
  /** From the usage chunk, else the number of text chunks. */
  outputTokens: number;
  /** From the usage chunk; null without one. */
  promptTokens: number | null;
  /** Whether the server sent a usage chunk. */
  usageReported: boolean;
  /** The answer's text (sent back in the next turn). */
  text: string;
}

type ChatContent = string | ({ type: 'text'; text: string } | { type: 'image_url'; image_url: { url: string } })[];
interface ChatMessage {
  role: 'user' | 'assistant';
  content: ChatContent;
}

interface StreamChunk {
  error?: { message?: string; code?: string } | string;
  choices?: { delta?: { content?: string | null; reasoning_content?: string | null } }[];
  usage?: { completion_tokens?: number; prompt_tokens?: number } | null;
}

async function sendChat(
  endpoint: string,
  body: Record<string, unknown>,
  apiKey: string | undefined,
  signal: AbortSignal,
  t0: number,
  where: { conversation: number; turn: number },
): Promise<RequestRecord> {
  const start = performance.now();
  const rec: RequestRecord = {
    ...where,
    outcome: 'ok',
    startMs: start - t0,
    ttftMs: null,
    itlMs: [],
    e2eMs: 0,
    outputTokens: 0,
    promptTokens: null,
    usageReported: false,
    text: '',
  };
  const fail = (key: string, message: string): RequestRecord => {
    rec.outcome = signal.aborted ? 'aborted' : 'failed';
    if (rec.outcome === 'failed') {
      rec.errorKey = key;
      rec.errorMessage = message;
    }
    rec.e2eMs = performance.now() - start;
    return rec;
  };
  let res: Response;
  try {
    res = await fetch(endpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'text/event-stream', ...authHeaders(apiKey) },
      body: JSON.stringify(body),
      signal,
    });
  } catch (e) {
    return fail('connection', fetchFailure(e));
  }
  if (!res.ok) {
    const text = await res.text().catch(() => '');
    return fail(String(res.status), errorMessageOf(text));
  }
  if (!res.body) return fail('bad_stream', 'the response has no body');
  let chunks = 0;
  let last = 0;
  let done = false;
  try {
    for await (const data of sseData(res.body)) {
      if (data === '[DONE]') {
        done = true;
        break;
      }
      let chunk: StreamChunk;
      try {
        chunk = JSON.parse(data) as StreamChunk;
      } catch {
        return fail('bad_stream', `not JSON in the stream: ${data.slice(0, 120)}`);
      }
      if (chunk.error) {
        const e = chunk.error;
        return fail('stream_error', typeof e === 'string' ? e : `${e.message ?? 'error'}${e.code ? ` (${e.code})` : ''}`);
      }
      const delta = chunk.choices?.[0]?.delta;
      const piece = (delta?.content ?? '') + (delta?.reasoning_content ?? '');
      if (piece !== '') {
        const now = performance.now();
        if (chunks === 0) rec.ttftMs = now - start;
        else rec.itlMs.push(now - last);
        last = now;
        chunks++;
        rec.text += delta?.content ?? '';
      }
      if (chunk.usage && typeof chunk.usage.completion_tokens === 'number') {
        rec.usageReported = true;
        rec.outputTokens = chunk.usage.completion_tokens;
        if (typeof chunk.usage.prompt_tokens === 'number') rec.promptTokens = chunk.usage.prompt_tokens;
      }
    }
  } catch (e) {
    return fail('connection', fetchFailure(e));
  }
  if (!done) return fail('incomplete', 'the stream ended without data: [DONE]');
  if (!rec.usageReported) rec.outputTokens = chunks;
  rec.e2eMs = performance.now() - start;
  return rec;
}

// ---------------------------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------------------------

/** The prompt sent when none is given. */
export const DEFAULT_PROMPT = 'Write a short story about a lighthouse keeper who finds a message in a bottle.';

/** What `runLoad` does. */
export interface LoadOptions {
  /** The server's base URL, as `normalizeServerUrl` returns it. */
  url: string;
  model: string;
  apiKey?: string;
  /** Chat requests in all (default 32). With `turns > 1`, conversations of `turns` requests each. */
  requests?: number;
  /** Clients sending at once (default 8). */
  concurrency?: number;
  /** `max_tokens` of each request (default 32). */
  maxTokens?: number;
  /** The user message (default DEFAULT_PROMPT); each conversation's first turn is tagged `[n]`. */
  prompt?: string;
  /** The user message of turns after the first (default: `prompt` again). */
  followUp?: string;
  /** An image for the first user message of each conversation, as a `data:` URL. */
  imageUrl?: string;
  /** Turns per conversation (default 1). */
  turns?: number;
  /** Send a `session_id` per conversation (vlmesh keeps its KV blocks warm between turns). */
  session?: boolean;
  /** Sampling temperature (default 0). */
  temperature?: number;
  /** Stop launching and abort in-flight requests after this long (default 300 s). */
  timeoutMs?: number;
  /** Ends the run early like the timeout (Ctrl-C). */
  signal?: AbortSignal;
  /** Called after each request ends. */
  onProgress?: (p: { done: number; total: number; failed: number }) => void;
}

/** The summary of a run; field names are the `--json` output's. Times in ms, rates per second. */
export interface LoadReport {
  url: string;
  model: string;
  requests: number;
  concurrency: number;
  max_tokens: number;
  /** Requests that streamed to `[DONE]`. */
  completed: number;
  /** Requests that failed (see `errors`). */
  failed: number;
  /** In flight at the deadline (or Ctrl-C), aborted. */
  aborted: number;
  /** Never sent: the deadline came first, or their conversation had failed. */
  not_sent: number;
  /** Whether the run stopped at the deadline or on an outside abort. */
  stopped_early: boolean;
  /** Failures by HTTP status ("429", "500") or kind (`connection`, `stream_error`, `bad_stream`, `incomplete`). */
  errors: Record<string, number>;
  /** The first message seen for each key of `errors`. */
  error_messages: Record<string, string>;
  /** From the first request sent to the last one ended. */
  duration_s: number;
  /** Completed requests per second of `duration_s`. */
  request_throughput: number;
  /** Prompt tokens of the completed requests (from usage; 0 when the server sends none). */
  input_tokens: number;
  output_tokens: number;
  output_throughput_tok_s: number;
  /** Whether every completed request reported usage (else some counts are text chunks). */
  usage_reported: boolean;
  ttft_ms: Stats | null;
  itl_ms: Stats | null;
  e2e_ms: Stats | null;
  /** Time per output token after the first. */
  tpot_ms: Stats | null;
  /** Output tokens / E2E of each request. */
  per_request_output_tok_s: Stats | null;
  /** With turns > 1: per turn index (1-based), over the completed requests of that turn. */
  turns?: { turn: number; completed: number; prompt_tokens_mean: number | null; ttft_ms: Stats | null; e2e_ms: Stats | null }[];
}

/** Rounds every number to 3 decimals, for a readable report. */
const r3 = (v: number) => Math.round(v * 1000) / 1000;
const roundStats = (s: Stats | null): Stats | null => (s ? { mean: r3(s.mean), p50: r3(s.p50), p90: r3(s.p90), p99: r3(s.p99) } : null);

/**
 * Summarises per-request records into a report. Latency statistics cover completed requests;
 * ITL pools the gaps of all of them.
 *
 * @example
 * buildReport(records, { url, model: 'm', requests: 6, concurrency: 3, maxTokens: 4, durationMs: 2500, turns: 1, stoppedEarly: false })
 */
export function buildReport(
  records: readonly RequestRecord[],
  meta: { url: string; model: string; requests: number; concurrency: number; maxTokens: number; durationMs: number; turns: number; stoppedEarly: boolean },
): LoadReport {
  const ok = records.filter((r) => r.outcome === 'ok');
  const failed = records.filter((r) => r.outcome === 'failed');
  const errors: Record<string, number> = {};
  const errorMessages: Record<string, string> = {};
  for (const r of failed) {
    const key = r.errorKey ?? 'unknown';
    errors[key] = (errors[key] ?? 0) + 1;
    if (!(key in errorMessages)) errorMessages[key] = r.errorMessage ?? '';
  }
  const durationS = meta.durationMs / 1000;
  const outputTokens = ok.reduce((s, r) => s + r.outputTokens, 0);
  const inputTokens = ok.reduce((s, r) => s + (r.promptTokens ?? 0), 0);
  const rate = (n: number) => (durationS > 0 ? r3(n / durationS) : 0);
  const ttft = (rs: readonly RequestRecord[]) => summarize(rs.flatMap((r) => (r.ttftMs === null ? [] : [r.ttftMs])));
  const e2e = (rs: readonly RequestRecord[]) => summarize(rs.map((r) => r.e2eMs));
  const report: LoadReport = {
    url: meta.url,
    model: meta.model,
    requests: meta.requests,
    concurrency: meta.concurrency,
    max_tokens: meta.maxTokens,
    completed: ok.length,
    failed: failed.length,
    aborted: records.filter((r) => r.outcome === 'aborted').length,
    not_sent: meta.requests - records.length,
    stopped_early: meta.stoppedEarly,
    errors,
    error_messages: errorMessages,
    duration_s: r3(durationS),
    request_throughput: rate(ok.length),
    input_tokens: inputTokens,
    output_tokens: outputTokens,
    output_throughput_tok_s: rate(outputTokens),
    usage_reported: ok.every((r) => r.usageReported),
    ttft_ms: roundStats(ttft(ok)),
    itl_ms: roundStats(summarize(ok.flatMap((r) => r.itlMs))),
    e2e_ms: roundStats(e2e(ok)),
    tpot_ms: roundStats(summarize(ok.flatMap((r) => (r.outputTokens > 1 && r.ttftMs !== null ? [(r.e2eMs - r.ttftMs) / (r.outputTokens - 1)] : [])))),
    per_request_output_tok_s: roundStats(summarize(ok.flatMap((r) => (r.e2eMs > 0 ? [(r.outputTokens * 1000) / r.e2eMs] : [])))),
  };
  if (meta.turns > 1) {
    report.turns = [];
    for (let t = 0; t < meta.turns; t++) {
      const at = ok.filter((r) => r.turn === t);
      const prompts = at.flatMap((r) => (r.promptTokens === null ? [] : [r.promptTokens]));
      report.turns.push({
        turn: t + 1,
        completed: at.length,
        prompt_tokens_mean: prompts.length ? r3(prompts.reduce((s, v) => s + v, 0) / prompts.length) : null,
        ttft_ms: roundStats(ttft(at)),
        e2e_ms: roundStats(e2e(at)),
      });
    }
  }
  return report;
}

const positiveInt = (name: string, v: number) => {
  if (!Number.isInteger(v) || v <= 0) throw new RangeError(`${name} must be a positive integer, got ${v}`);
  return v;
};

/**
 * Runs the load: `concurrency` clients take conversations from a shared queue until `requests`
 * requests are sent, the deadline passes or `signal` aborts; then summarises.
 *
 * @example
 * const report = await runLoad({ url: 'http://127.0.0.1:8080', model: 'realvocab', requests: 6, concurrency: 3, maxTokens: 4 });
 * console.log(formatLoadReport(report));
 */
export async function runLoad(options: LoadOptions): Promise<LoadReport> {
  const requests = positiveInt('requests', options.requests ?? 32);
  const concurrency = positiveInt('concurrency', options.concurrency ?? 8);
  const maxTokens = positiveInt('maxTokens', options.maxTokens ?? 32);
  const turns = positiveInt('turns', options.turns ?? 1);
  const timeoutMs = options.timeoutMs ?? 300_000;
  if (!(timeoutMs > 0)) throw new RangeError(`timeoutMs must be positive, got ${timeoutMs}`);
  const temperature = options.temperature ?? 0;
  const prompt = options.prompt ?? DEFAULT_PROMPT;
  const endpoint = `${options.url}/v1/chat/completions`;
  const runTag = Math.random().toString(36).slice(2, 10);

  const stop = new AbortController();
  const timer = setTimeout(() => stop.abort(new Error('timeout')), timeoutMs);
  const onOutside = () => stop.abort(options.signal?.reason);
  if (options.signal?.aborted) stop.abort(options.signal.reason);
  options.signal?.addEventListener('abort', onOutside, { once: true });

  const records: RequestRecord[] = [];
  const conversations = Math.ceil(requests / turns);
  let nextConversation = 0;
  let failedCount = 0;
  const t0 = performance.now();
  let lastEnd = t0;

  const client = async () => {
    while (!stop.signal.aborted && nextConversation < conversations) {
      const c = nextConversation++;
      const turnsHere = Math.min(turns, requests - c * turns);
      const messages: ChatMessage[] = [];
      for (let t = 0; t < turnsHere && !stop.signal.aborted; t++) {
        const text = t === 0 ? `[${c + 1}] ${prompt}` : (options.followUp ?? prompt);
        const content: ChatContent = t === 0 && options.imageUrl ? [{ type: 'image_url', image_url: { url: options.imageUrl } }, { type: 'text', text }] : text;
        messages.push({ role: 'user', content });
        const body: Record<string, unknown> = {
          model: options.model,
          messages,
          max_tokens: maxTokens,
          temperature,
          stream: true,
          stream_options: { include_usage: true },
          ...(options.session ? { session_id: `bench-${runTag}-${c + 1}` } : {}),
        };
        const rec = await sendChat(endpoint, body, options.apiKey, stop.signal, t0, { conversation: c, turn: t });
        records.push(rec);
        lastEnd = performance.now();
        if (rec.outcome === 'failed') failedCount++;
        options.onProgress?.({ done: records.length, total: requests, failed: failedCount });
        if (rec.outcome !== 'ok') break;
        messages.push({ role: 'assistant', content: rec.text });
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(concurrency, conversations) }, client));
  } finally {
    clearTimeout(timer);
    options.signal?.removeEventListener('abort', onOutside);
  }
  const first = records.reduce((m, r) => Math.min(m, r.startMs), Number.POSITIVE_INFINITY);
  const durationMs = records.length ? lastEnd - t0 - first : 0;
  return buildReport(records, {
    url: options.url,
    model: options.model,
    requests,
    concurrency,
    maxTokens,
    durationMs,
    turns,
    stoppedEarly: stop.signal.aborted,
  });
}

// ---------------------------------------------------------------------------------------------
// Text report
// ---------------------------------------------------------------------------------------------

const fmt = (v: number) => (Math.abs(v) >= 100 ? v.toFixed(1) : v.toFixed(2));

/**
 * The report as a plain-text table (what `vlmesh bench serve` prints without `--json`).
 *
 * @example
 * process.stdout.write(formatLoadReport(await runLoad(options)));
 */
export function formatLoadReport(r: LoadReport): string {
  const lines: string[] = [];
  const kv = (k: string, v: string) => lines.push(`${k.padEnd(26)}${v}`);
  lines.push(`vlmesh bench serve: ${r.url}  model ${r.model}`);
  kv('requests', `${r.requests} (concurrency ${r.concurrency}, max_tokens ${r.max_tokens})`);
  const outcome = [`${r.completed} completed`, `${r.failed} failed`];
  if (r.aborted) outcome.push(`${r.aborted} aborted`);
  if (r.not_sent) outcome.push(`${r.not_sent} not sent`);
  kv('outcome', outcome.join(', ') + (r.stopped_early ? ' (stopped early: timeout or interrupt)' : ''));
  kv('duration', `${r.duration_s.toFixed(2)} s`);
  kv('request throughput', `${r.request_throughput.toFixed(2)} req/s`);
  kv('input tokens', String(r.input_tokens));
  kv('output tokens', `${r.output_tokens}${r.usage_reported ? '' : ' (some counted as text chunks: no usage)'}`);
  kv('output throughput', `${r.output_throughput_tok_s.toFixed(2)} tok/s`);
  const rows: [string, Stats | null][] = [
    ['TTFT (ms)', r.ttft_ms],
    ['TPOT (ms)', r.tpot_ms],
    ['ITL (ms)', r.itl_ms],
    ['E2E latency (ms)', r.e2e_ms],
    ['output tok/s per request', r.per_request_output_tok_s],
    ...(r.turns ?? []).map((t): [string, Stats | null] => [`turn ${t.turn} TTFT (ms)`, t.ttft_ms]),
  ];
  const col = (s: string) => s.padStart(10);
  lines.push('');
  lines.push(`${''.padEnd(26)}${['mean', 'p50', 'p90', 'p99'].map(col).join('')}`);
  for (const [name, s] of rows) {
    lines.push(`${name.padEnd(26)}${s ? [s.mean, s.p50, s.p90, s.p99].map((v) => col(fmt(v))).join('') : col('-')}`);
  }
  const keys = Object.keys(r.errors);
  if (keys.length) {
    lines.push('');
    lines.push('errors');
    for (const k of keys) lines.push(`  ${k.padEnd(14)}${String(r.errors[k]).padStart(6)}  ${r.error_messages[k] ?? ''}`);
  }
  return `${lines.join('\n')}\n`;
}
