/**
 * `POST /v1/chat/completions` as OpenAI (and vLLM) define it: the request and response types this
 * server reads and writes, and the validation that turns a parsed JSON body into an engine request
 * or a precise 400 naming the offending field. Isomorphic (no Node APIs): the browser's worker
 * proxy validates the same way.
 */
import { type ImageInput, PRIORITY_CLASSES, type PriorityClass, type SamplingParams, type VideoFramesInput } from '../engine/engine.ts';
import type { ChatContentPart, ChatMessage } from '../text/chat-template.ts';
import { ApiError, ApiErrorType, invalidParam } from './errors.ts';
import { type FunctionTool, normalizeToolMessages, parseTools, type ToolCall, type ToolCallDelta, type ToolChoice } from './tool-calls.ts';

/** A content part of a user message as clients send it. */
export type ChatCompletionContentPart =
  | { type: 'text'; text: string }
  | { type: 'image_url'; image_url: { url: string; detail?: string } }
  | { type: 'video_url'; video_url: { url: string } };

/** An `image_url` with an `http(s):` URL, left for the server to fetch (see `ParseOptions.remoteMedia`). */
export interface RemoteImageRef {
  /** Its place in `ParsedChatRequest.images` (a placeholder with no bytes until fetched). */
  index: number;
  url: string;
  /** The request field, for error messages. */
  param: string;
}

/** The video of a `video_url` part: inline bytes (data: URL) or an `http(s):` URL to fetch. */
export type VideoSource = { param: string } & ({ bytes: Uint8Array; mimeType: string } | { url: string });

/** What parsing collects of a request's media besides inline images. */
interface MediaSink {
  remoteMedia: boolean;
  remoteImages: RemoteImageRef[];
  video?: VideoSource;
}

export interface ChatCompletionMessageParam {
  role: 'system' | 'user' | 'assistant' | 'tool' | 'developer';
  content?: string | ChatCompletionContentPart[] | null;
  [key: string]: unknown;
}

/** The fields this server reads; others are ignored, as vLLM does. */
export interface ChatCompletionRequest {
  model: string;
  messages: ChatCompletionMessageParam[];
  stream?: boolean;
  stream_options?: { include_usage?: boolean } | null;
  max_tokens?: number | null;
  max_completion_tokens?: number | null;
  temperature?: number | null;
  top_p?: number | null;
  top_k?: number | null;
  seed?: number | null;
  stop?: string | string[] | null;
  presence_penalty?: number | null;
  frequency_penalty?: number | null;
  repetition_penalty?: number | null;
  n?: number | null;
  tools?: unknown[] | null;
  tool_choice?: unknown;
}

export type FinishReason = 'stop' | 'length' | 'tool_calls';

export interface CompletionUsage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

export interface ChatCompletion {
  id: string;
  object: 'chat.completion';
  created: number;
  model: string;
  choices: {
    index: number;
    message: { role: 'assistant'; content: string | null; tool_calls?: ToolCall[] };
    logprobs: null;
    finish_reason: FinishReason;
  }[];
  usage: CompletionUsage;
}

export interface ChatCompletionChunk {
  id: string;
  object: 'chat.completion.chunk';
  created: number;
  model: string;
  choices: {
    index: number;
    delta: { role?: 'assistant'; content?: string; tool_calls?: ToolCallDelta[] };
    logprobs: null;
    finish_reason: FinishReason | null;
  }[];
  usage?: CompletionUsage | null;
}

/** A validated request, ready for `Engine.stream`. */
export interface ParsedChatRequest {
  model: string;
  /** Messages for the chat template; each image is a `{type: 'image'}` part. */
  messages: ChatMessage[];
  /** The images of the `{type: 'image'}` parts, in order. */
  images: ImageInput[];
  /** `http(s):` images still to fetch into `images` (only with `ParseOptions.remoteMedia`). */
  remoteImages?: RemoteImageRef[];
  /** The `video_url` part's source (one video per request); the server decodes it into `video`. */
  videoSource?: VideoSource;
  /** The decoded video of the `{type: 'video'}` part, set by the server before generation. */
  video?: VideoFramesInput;
  sampling: SamplingParams;
  stream: boolean;
  includeUsage: boolean;
  /** Validated function tools, for the chat template; absent when none. */
  tools?: FunctionTool[];
  toolChoice: ToolChoice;
  /** Parse the output for `<tool_call>` blocks (tools given, `tool_choice` not 'none'). */
  parseToolCalls: boolean;
  /** Non-standard `truncate_prompt`: drop the oldest non-system turns when the prompt does not fit. */
  truncatePrompt?: 'keep_system_and_recent';
  /** Scheduling class from `priority` (the server may also take it from a header). */
  priority?: PriorityClass;
  /** Non-standard `session_id`: keep this conversation's KV blocks warm between turns. */
  sessionId?: string;
}

export interface ParseOptions {
  /** `max_tokens` when the request gives none. */
  defaultMaxTokens: number;
  /** Upper bound on `max_tokens` (the model's context, or a server limit). */
  maxTokensLimit: number;
  /** Most stop strings accepted. Default 16. */
  maxStopStrings?: number;
  /**
   * Accept `http(s):` URLs in `image_url` / `video_url` parts (the server fetches them); without
   * it they get a 400 `remote_media_unsupported`.
   */
  remoteMedia?: boolean;
}

const ROLES = new Set(['system', 'user', 'assistant', 'tool', 'developer']);

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  return typeof v;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** An optional number field: undefined/null → undefined; else a finite number in range. */
function optNumber(
  body: Record<string, unknown>,
  key: string,
  check: { min?: number; max?: number; gtMin?: boolean; integer?: boolean } = {},
): number | undefined {
  const v = body[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v)) {
    throw invalidParam(key, `'${key}' must be a number, got ${typeName(v)}`, 'invalid_type');
  }
  if (check.integer && !Number.isSafeInteger(v)) throw invalidParam(key, `'${key}' must be an integer, got ${v}`);
  if (check.min !== undefined && (check.gtMin ? v <= check.min : v < check.min)) {
    throw invalidParam(key, `'${key}' must be ${check.gtMin ? '>' : '>='} ${check.min}, got ${v}`);
  }
  if (check.max !== undefined && v > check.max) throw invalidParam(key, `'${key}' must be <= ${check.max}, got ${v}`);
  return v;
}

/** RFC 4648 base64 (padding optional, whitespace ignored) → bytes; null when invalid. */
export function decodeBase64(text: string): Uint8Array | null {
  const s = text.replace(/[\t\n\r ]/g, '');
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(s) || s.length % 4 === 1) return null;
  let bin: string;
  try {
    bin = atob(s.length % 4 === 0 ? s : s + '='.repeat(4 - (s.length % 4)));
  } catch {
    return null;
  }
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/**
 * Decodes an `image_url` URL to image bytes. `data:` URLs only: `http(s):` URLs get a 400 (this
 * server does not fetch remote media yet), as does a data URL whose type is not `image/*`.
 */
export function imageFromUrl(url: string, param: string): ImageInput {
  return dataUrlMedia(url, param, 'image');
}

/** A `data:` URL of `family`/* media → its bytes; 400s as `imageFromUrl` describes. */
function dataUrlMedia(url: string, param: string, family: 'image' | 'video'): { bytes: Uint8Array; mimeType: string } {
  const scheme = /^([a-zA-Z][a-zA-Z0-9+.-]*):/.exec(url)?.[1]?.toLowerCase();
  if (scheme === 'http' || scheme === 'https') {
    throw new ApiError(
      400,
      ApiErrorType.InvalidRequest,
      'remote_media_unsupported',
      'remote media not supported yet: send the image inline as a data: URL (data:image/png;base64,...)',
      param,
    );
  }
  if (scheme !== 'data') {
    throw invalidParam(param, `${family} URLs must be data: URLs${scheme ? `, got a ${scheme}: URL` : ''}`, 'invalid_url');
  }
  const comma = url.indexOf(',');
  if (comma < 0) throw invalidParam(param, 'malformed data: URL (no comma before the data)', 'invalid_url');
  const meta = url.slice(5, comma).split(';').map((s) => s.trim());
  const mimeType = (meta[0] || 'text/plain').toLowerCase();
  const base64 = meta.slice(1).some((m) => m.toLowerCase() === 'base64');
  if (!mimeType.startsWith(`${family}/`)) {
    throw invalidParam(param, `unsupported media type '${mimeType}' for ${family === 'image' ? 'an' : 'a'} ${family}_url part: expected ${family}/*`, 'unsupported_media_type');
  }
  const data = url.slice(comma + 1);
  let bytes: Uint8Array | null;
  if (base64) bytes = decodeBase64(data);
  else {
    try {
      bytes = new TextEncoder().encode(decodeURIComponent(data));
    } catch {
      bytes = null;
    }
  }
  if (!bytes) throw invalidParam(param, 'the data: URL does not hold valid base64', 'invalid_base64');
  if (bytes.length === 0) throw invalidParam(param, 'the data: URL holds no bytes', 'invalid_base64');
  return { bytes, mimeType };
}

const isRemote = (url: string) => /^https?:/i.test(url);

function parsePart(part: unknown, param: string, images: ImageInput[], media: MediaSink): ChatContentPart {
  if (!isObject(part)) throw invalidParam(param, `content parts must be objects, got ${typeName(part)}`, 'invalid_type');
  switch (part.type) {
    case 'text':
      if (typeof part.text !== 'string') {
        throw invalidParam(`${param}.text`, `'text' must be a string, got ${typeName(part.text)}`, 'invalid_type');
      }
      return { type: 'text', text: part.text };
    case 'image_url': {
      const iu = part.image_url;
      const url = typeof iu === 'string' ? iu : isObject(iu) ? iu.url : undefined;
      if (typeof url !== 'string') {
        throw invalidParam(`${param}.image_url.url`, `'image_url.url' must be a string, got ${typeName(url)}`, 'invalid_type');
      }
      if (media.remoteMedia && isRemote(url)) {
        media.remoteImages.push({ index: images.length, url, param: `${param}.image_url.url` });
        images.push({ bytes: new Uint8Array(0) });
      } else images.push(imageFromUrl(url, `${param}.image_url.url`));
      return { type: 'image' };
    }
    case 'video_url': {
      const vu = part.video_url;
      const url = typeof vu === 'string' ? vu : isObject(vu) ? vu.url : undefined;
      const at = `${param}.video_url.url`;
      if (typeof url !== 'string') throw invalidParam(at, `'video_url.url' must be a string, got ${typeName(url)}`, 'invalid_type');
      if (media.video) throw invalidParam(at, 'at most one video per request is supported');
      if (isRemote(url) && !media.remoteMedia) {
        throw new ApiError(400, ApiErrorType.InvalidRequest, 'remote_media_unsupported', 'this server does not fetch remote media: send the video inline as a data: URL (data:video/mp4;base64,...)', at);
      }
      media.video = isRemote(url) ? { url, param: at } : { ...dataUrlMedia(url, at, 'video'), param: at };
      return { type: 'video' };
    }
    default:
      throw invalidParam(
        `${param}.type`,
        `unsupported content part type ${JSON.stringify(part.type ?? null)}: supported are 'text', 'image_url' and 'video_url'`,
        'unsupported_content_type',
      );
  }
}

function parseMessages(v: unknown, images: ImageInput[], media: MediaSink = { remoteMedia: false, remoteImages: [] }): ChatMessage[] {
  if (!Array.isArray(v)) throw invalidParam('messages', `'messages' must be an array, got ${typeName(v)}`, 'invalid_type');
  if (v.length === 0) throw invalidParam('messages', "'messages' must not be empty");
  return v.map((m, i): ChatMessage => {
    const param = `messages[${i}]`;
    if (!isObject(m)) throw invalidParam(param, `each message must be an object, got ${typeName(m)}`, 'invalid_type');
    if (typeof m.role !== 'string' || !ROLES.has(m.role)) {
      throw invalidParam(`${param}.role`, `'role' must be one of ${[...ROLES].join(', ')}, got ${JSON.stringify(m.role ?? null)}`);
    }
    // The Qwen template knows no 'developer' role: it is OpenAI's newer name for 'system'.
    const role = m.role === 'developer' ? 'system' : m.role;
    const out: ChatMessage = { ...m, role };
    const c = m.content;
    if (c === undefined || c === null) {
      if (role !== 'assistant') throw invalidParam(`${param}.content`, `'content' is required for a ${role} message`);
      out.content = '';
    } else if (typeof c === 'string') out.content = c;
    else if (Array.isArray(c)) {
      out.content = c.map((p, j) => parsePart(p, `${param}.content[${j}]`, images, media));
      if (role !== 'user' && out.content.some((p) => p.type === 'image')) {
        throw invalidParam(`${param}.content`, `images are accepted in user messages only, not in a ${role} message`);
      }
    } else {
      throw invalidParam(`${param}.content`, `'content' must be a string or an array of parts, got ${typeName(c)}`, 'invalid_type');
    }
    return out;
  });
}

function parseStop(v: unknown, max: number): string[] {
  if (v === undefined || v === null) return [];
  const list = typeof v === 'string' ? [v] : v;
  if (!Array.isArray(list) || list.some((s) => typeof s !== 'string')) {
    throw invalidParam('stop', `'stop' must be a string or an array of strings, got ${typeName(v)}`, 'invalid_type');
  }
  if (list.length > max) throw invalidParam('stop', `at most ${max} stop strings, got ${list.length}`);
  if (list.some((s) => s === '')) throw invalidParam('stop', 'stop strings must not be empty');
  return list as string[];
}

/**
 * The scheduling class of a request: a class name ('gui' | 'interactive' | 'batch'), or vLLM's
 * integer `priority` (lower = sooner): < 0 → gui, 0 → interactive, > 0 → batch.
 */
export function parsePriority(v: unknown, param = 'priority'): PriorityClass | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'string' && (PRIORITY_CLASSES as readonly string[]).includes(v)) return v as PriorityClass;
  if (typeof v === 'number' && Number.isInteger(v)) return v < 0 ? 'gui' : v === 0 ? 'interactive' : 'batch';
  throw invalidParam(
    param,
    `'${param}' must be one of ${PRIORITY_CLASSES.map((c) => `"${c}"`).join(', ')} or an integer (lower = sooner), got ${JSON.stringify(v)}`,
    typeof v === 'string' || typeof v === 'number' ? 'invalid_value' : 'invalid_type',
  );
}

/**
 * Validates a parsed JSON body. Model availability is the caller's check (it answers 404).
 *
 * @throws ApiError (400) naming the field.
 * @example
 * const req = parseChatRequest(JSON.parse(body), { defaultMaxTokens: 512, maxTokensLimit: 8192 });
 * for await (const ev of engine.stream({ id, ...req, signal })) ...
 */
export function parseChatRequest(body: unknown, o: ParseOptions): ParsedChatRequest {
  if (!isObject(body)) throw invalidParam('body', `the request body must be a JSON object, got ${typeName(body)}`, 'invalid_type');
  if (typeof body.model !== 'string' || body.model === '') {
    throw invalidParam('model', `'model' must be a non-empty string, got ${typeName(body.model)}`, body.model === undefined ? 'missing_required_parameter' : 'invalid_type');
  }
  if (body.stream !== undefined && body.stream !== null && typeof body.stream !== 'boolean') {
    throw invalidParam('stream', `'stream' must be a boolean, got ${typeName(body.stream)}`, 'invalid_type');
  }
  const so = body.stream_options;
  if (so !== undefined && so !== null && !isObject(so)) {
    throw invalidParam('stream_options', `'stream_options' must be an object, got ${typeName(so)}`, 'invalid_type');
  }
  const includeUsage = isObject(so) ? so.include_usage : undefined;
  if (includeUsage !== undefined && includeUsage !== null && typeof includeUsage !== 'boolean') {
    throw invalidParam('stream_options.include_usage', `'include_usage' must be a boolean, got ${typeName(includeUsage)}`, 'invalid_type');
  }
  const n = optNumber(body, 'n', { min: 1, integer: true });
  if (n !== undefined && n !== 1) throw invalidParam('n', `only n = 1 is supported, got ${n}`);
  const images: ImageInput[] = [];
  const media: MediaSink = { remoteMedia: o.remoteMedia === true, remoteImages: [] };
  const messages = normalizeToolMessages(parseMessages(body.messages, images, media));
  const maxCompletion = optNumber(body, 'max_completion_tokens', { min: 1, integer: true, max: o.maxTokensLimit });
  const maxTokens = optNumber(body, 'max_tokens', { min: 1, integer: true, max: o.maxTokensLimit });
  const temperature = optNumber(body, 'temperature', { min: 0, max: 2 }) ?? 1;
  const topP = optNumber(body, 'top_p', { min: 0, gtMin: true, max: 1 }) ?? 1;
  // vLLM takes -1 (and 0) for "off".
  const topK = optNumber(body, 'top_k', { min: -1, integer: true }) ?? 0;
  const seed = optNumber(body, 'seed', { min: 0, integer: true });
  const presencePenalty = optNumber(body, 'presence_penalty', { min: -2, max: 2 }) ?? 0;
  const frequencyPenalty = optNumber(body, 'frequency_penalty', { min: -2, max: 2 }) ?? 0;
  const repetitionPenalty = optNumber(body, 'repetition_penalty', { min: 0, gtMin: true }) ?? 1;
  const stop = parseStop(body.stop, o.maxStopStrings ?? 16);
  const tools = parseTools(body);
  // Non-standard: what to do when the prompt + max_tokens exceed the context (default: a 400).
  const truncate = body.truncate_prompt;
  if (truncate !== undefined && truncate !== null && truncate !== 'keep_system_and_recent') {
    throw invalidParam('truncate_prompt', `'truncate_prompt' must be "keep_system_and_recent" or absent, got ${JSON.stringify(truncate)}`);
  }
  const priority = parsePriority(body.priority);
  const sessionId = body.session_id;
  if (sessionId !== undefined && sessionId !== null && (typeof sessionId !== 'string' || sessionId === '' || sessionId.length > 256)) {
    throw invalidParam('session_id', `'session_id' must be a string of 1 to 256 characters, got ${typeName(sessionId)}`, typeof sessionId === 'string' ? 'invalid_value' : 'invalid_type');
  }
  if (body.user !== undefined && body.user !== null && typeof body.user !== 'string') {
    throw invalidParam('user', `'user' must be a string, got ${typeName(body.user)}`, 'invalid_type');
  }
  const given = maxCompletion ?? maxTokens;
  return {
    model: body.model,
    messages,
    images,
    ...(priority ? { priority } : {}),
    ...(typeof sessionId === 'string' ? { sessionId } : {}),
    sampling: {
      maxTokens: given ?? o.defaultMaxTokens,
      ...(given === undefined ? { maxTokensAuto: true } : {}),
      temperature,
      topP,
      topK: topK < 0 ? 0 : topK,
      ...(seed === undefined ? {} : { seed }),
      presencePenalty,
      frequencyPenalty,
      repetitionPenalty,
      stop,
    },
    stream: body.stream === true,
    includeUsage: includeUsage === true,
    ...(media.remoteImages.length ? { remoteImages: media.remoteImages } : {}),
    ...(media.video ? { videoSource: media.video } : {}),
    ...(truncate ? { truncatePrompt: truncate } : {}),
    ...tools,
  };
}
