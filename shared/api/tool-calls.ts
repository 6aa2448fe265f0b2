/**
 * Tool calling for the chat API, the way vLLM's `hermes` tool parser does it for Qwen: the chat
 * template lists the `tools` and asks the model to answer with blocks
 *
 *   <tool_call>
 *   {"name": "get_weather", "arguments": {"city": "Paris"}}
 *   </tool_call>
 *
 * and this module turns such blocks in the generated text into OpenAI `tool_calls`, either from
 * the whole text (`extractToolCalls`) or from a stream of text deltas (`ToolCallStreamParser`).
 * Both read the text the same way, so a stream, however it is split, yields the same content and
 * calls as the whole text:
 *
 *   text:     "Let me check.\n<tool_call>\n{json}\n</tool_call>\n<tool_call>{bad</tool_call>"
 *              └─ outside ──┘ └──────── call 0 ────────────┘ └─ malformed: stays content ─┘
 *   content:  "Let me check.\n\n<tool_call>{bad</tool_call>"  (outside text joined, then trimmed)
 *
 * A block is a call when its body is a JSON object with a string `name` and an `arguments`
 * object (or a string holding a JSON object); any other block is left in the content, as vLLM
 * leaves unparsable output. A last block that never closes (the model stopped inside it) is a call
 * if its body parses, else content, like vLLM's `<tool_call>(.*)` fallback.
 *
 * Also here: validation of the request's `tools` / `tool_choice`, and of the tool calls and tool
 * results in incoming messages (normalized to what the Qwen template expects). Isomorphic.
 */
import type { ChatMessage, ChatToolCall } from '../text/chat-template.ts';
import { invalidParam } from './errors.ts';

export const TOOL_CALL_START = '<tool_call>';
export const TOOL_CALL_END = '</tool_call>';

/** A tool call as the response carries it (`message.tool_calls[i]`). */
export interface ToolCall {
  id: string;
  type: 'function';
  /** `arguments` is a JSON object serialized to a string, as OpenAI sends it. */
  function: { name: string; arguments: string };
}

/** What `extractToolCalls` finds in a whole generated text. */
export interface ExtractedToolCalls {
  /** The text outside the tool-call blocks (malformed blocks included), trimmed; null when empty. */
  content: string | null;
  toolCalls: ToolCall[];
}

/** One element of a streaming `delta.tool_calls`. */
export interface ToolCallDelta {
  index: number;
  id?: string;
  type?: 'function';
  function: { name?: string; arguments: string };
}

/** A streaming `choices[0].delta` (without `role`). */
export interface ToolStreamDelta {
  content?: string;
  tool_calls?: ToolCallDelta[];
}

export interface ToolCallParseOptions {
  /** Makes the id of each call. Default `call_` + 24 random hex digits (seeded in tests). */
  newId?: () => string;
}

/** `call_` + 24 random hex digits (96 bits), from the platform's CSPRNG. */
export function randomToolCallId(): string {
  const bytes = new Uint8Array(12);
  globalThis.crypto.getRandomValues(bytes);
  let hex = '';
  for (const b of bytes) hex += b.toString(16).padStart(2, '0');
  return `call_${hex}`;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  return typeof v;
}

/** JSON text → object, or undefined when it is not JSON or not an object. */
function parseJsonObject(text: string): Record<string, unknown> | undefined {
  try {
    const v: unknown = JSON.parse(text);
    return isObject(v) ? v : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The body of one block → `{name, arguments}` (arguments as a JSON string), or null when the block
 * is not a well-formed call. A string `arguments` must hold a JSON object and is kept as written.
 */
function parseCallBody(body: string): { name: string; arguments: string } | null {
  const call = parseJsonObject(body);
  if (!call || typeof call.name !== 'string' || call.name === '') return null;
  const args = call.arguments;
  if (isObject(args)) return { name: call.name, arguments: JSON.stringify(args) };
  if (typeof args === 'string' && parseJsonObject(args)) return { name: call.name, arguments: args };
  return null;
}

/**
 * Finds the tool calls in a whole generated text (non-streaming responses).
 *
 * @example
 * extractToolCalls('<tool_call>\n{"name": "f", "arguments": {"x": 1}}\n</tool_call>')
 * // { content: null, toolCalls: [{ id: 'call_…', type: 'function', function: { name: 'f', arguments: '{"x":1}' } }] }
 */
export function extractToolCalls(text: string, o: ToolCallParseOptions = {}): ExtractedToolCalls {
  const newId = o.newId ?? randomToolCallId;
  const toolCalls: ToolCall[] = [];
  let outside = '';
  let pos = 0;
  while (pos < text.length) {
    const start = text.indexOf(TOOL_CALL_START, pos);
    if (start < 0) {
      outside += text.slice(pos);
      break;
    }
    outside += text.slice(pos, start);
    const bodyAt = start + TOOL_CALL_START.length;
    const end = text.indexOf(TOOL_CALL_END, bodyAt);
    // An unclosed last block runs to the end of the text.
    const blockEnd = end < 0 ? text.length : end + TOOL_CALL_END.length;
    const call = parseCallBody(text.slice(bodyAt, end < 0 ? text.length : end));
    if (call) toolCalls.push({ id: newId(), type: 'function', function: call });
    else outside += text.slice(start, blockEnd);
    pos = blockEnd;
  }
  const content = outside.trim();
  return { content: content === '' ? null : content, toolCalls };
}

/** Length of the longest tail of `s` that is a proper prefix of `marker`. */
function partialMarkerTail(s: string, marker: string): number {
  for (let n = Math.min(s.length, marker.length - 1); n > 0; n--) {
    if (s.endsWith(marker.slice(0, n))) return n;
  }
  return 0;
}

/**
 * Turns a stream of generated text deltas into OpenAI streaming deltas: `content` outside the
 * tool-call blocks, and for each call, once its block has closed and parsed, one delta with the
 * call's `index`, `id`, `type` and `function.name` (and `arguments: ''`), then one delta with the
 * whole `function.arguments` string. (vLLM streams arguments piece by piece as the JSON grows;
 * sending them once the block is complete is equally valid for clients, which concatenate the
 * pieces, and keeps a malformed block from ever showing up as a call.)
 *
 * Content is held back while it could be the start of `<tool_call>` (like a stop-string matcher),
 * while inside a block, and while it is trailing whitespace (the content is trimmed, as the
 * non-streaming one). The concatenated content and the calls equal `extractToolCalls` on the
 * whole text, whatever the split.
 *
 * @example
 * const p = new ToolCallStreamParser();
 * for await (const text of deltas) for (const d of p.push(text)) send(chunk(d, null));
 * for (const d of p.flush()) send(chunk(d, null));
 * send(chunk({}, p.toolCallCount > 0 ? 'tool_calls' : finishReason));
 */
export class ToolCallStreamParser {
  private readonly newId: () => string;
  /** Text not yet classified: a possible partial `<tool_call>`, or the body of an open block. */
  private buf = '';
  private inBlock = false;
  /** Non-whitespace content has been emitted (leading whitespace is dropped before it). */
  private started = false;
  /** Whitespace after the last emitted content, sent only if more content follows. */
  private pendingSpace = '';
  private calls = 0;
  private ended = false;

  constructor(o: ToolCallParseOptions = {}) {
    this.newId = o.newId ?? randomToolCallId;
  }

  /** Tool calls emitted so far (the finish reason is `tool_calls` when this is > 0). */
  get toolCallCount(): number {
    return this.calls;
  }

  /** Feeds one text delta; returns the deltas to send now (possibly none). */
  push(text: string): ToolStreamDelta[] {
    if (this.ended) throw new Error('ToolCallStreamParser: push after flush');
    const out: ToolStreamDelta[] = [];
    this.buf += text;
    for (;;) {
      if (!this.inBlock) {
        const start = this.buf.indexOf(TOOL_CALL_START);
        if (start < 0) {
          const keep = partialMarkerTail(this.buf, TOOL_CALL_START);
          this.emitContent(this.buf.slice(0, this.buf.length - keep), out);
          this.buf = this.buf.slice(this.buf.length - keep);
          break;
        }
        this.emitContent(this.buf.slice(0, start), out);
        this.buf = this.buf.slice(start + TOOL_CALL_START.length);
        this.inBlock = true;
      } else {
        const end = this.buf.indexOf(TOOL_CALL_END);
        if (end < 0) break;
        const body = this.buf.slice(0, end);
        this.buf = this.buf.slice(end + TOOL_CALL_END.length);
        this.inBlock = false;
        this.emitBlock(body, TOOL_CALL_END, out);
      }
    }
    return mergeContent(out);
  }

  /** Ends the stream: returns what was held (a partial marker is content; an open block is a call if it parses). */
  flush(): ToolStreamDelta[] {
    if (this.ended) return [];
    this.ended = true;
    const out: ToolStreamDelta[] = [];
    if (this.inBlock) this.emitBlock(this.buf, '', out);
    else this.emitContent(this.buf, out);
    this.buf = '';
    return mergeContent(out);
  }

  private emitBlock(body: string, closing: string, out: ToolStreamDelta[]): void {
    const call = parseCallBody(body);
    if (!call) {
      this.emitContent(TOOL_CALL_START + body + closing, out);
      return;
    }
    const index = this.calls++;
    out.push({ tool_calls: [{ index, id: this.newId(), type: 'function', function: { name: call.name, arguments: '' } }] });
    out.push({ tool_calls: [{ index, function: { arguments: call.arguments } }] });
  }

  /** Sends outside text, trimmed as a whole: no leading whitespace, trailing whitespace held. */
  private emitContent(s: string, out: ToolStreamDelta[]): void {
    if (!this.started) {
      s = s.replace(/^\s+/, '');
      if (s === '') return;
      this.started = true;
    }
    const core = s.replace(/\s+$/, '');
    if (core === '') {
      this.pendingSpace += s;
      return;
    }
    out.push({ content: this.pendingSpace + core });
    this.pendingSpace = s.slice(core.length);
  }
}

/** Joins consecutive content deltas into one. */
function mergeContent(deltas: ToolStreamDelta[]): ToolStreamDelta[] {
  const out: ToolStreamDelta[] = [];
  for (const d of deltas) {
    const last = out.at(-1);
    if (d.content !== undefined && last?.content !== undefined) last.content += d.content;
    else out.push(d);
  }
  return out;
}

// ─── request validation ──────────────────────────────────────────────────────────────────────

/** A function tool as the request declares it (passed to the chat template as given). */
export interface FunctionTool {
  type: 'function';
  function: { name: string; description?: string; parameters?: Record<string, unknown>; [key: string]: unknown };
}

/**
 * `tool_choice`: 'none' (tools are still shown to the model, as vLLM does by default, but the output
 * is not parsed for calls), 'auto' (parsed), 'required' or a named function. The last two are
 * taken as hints only: output is parsed as for 'auto', and generation is not constrained.
 */
export type ToolChoice = 'none' | 'auto' | 'required' | { type: 'function'; function: { name: string } };

export interface ParsedTools {
  /** The validated tools; absent when the request has none. */
  tools?: FunctionTool[];
  toolChoice: ToolChoice;
  /** Whether to parse the output for tool calls (tools given and `tool_choice` not 'none'). */
  parseToolCalls: boolean;
}

/**
 * Validates `tools` and `tool_choice` of a request body.
 *
 * @throws ApiError (400) naming the field, e.g. `tools[1].function.name`.
 */
export function parseTools(body: Record<string, unknown>): ParsedTools {
  const raw = body.tools;
  let tools: FunctionTool[] | undefined;
  if (raw !== undefined && raw !== null) {
    if (!Array.isArray(raw)) throw invalidParam('tools', `'tools' must be an array, got ${typeName(raw)}`, 'invalid_type');
    tools = raw.map((t, i): FunctionTool => {
      const param = `tools[${i}]`;
      if (!isObject(t)) throw invalidParam(param, `each tool must be an object, got ${typeName(t)}`, 'invalid_type');
      if (t.type !== 'function') {
        throw invalidParam(`${param}.type`, `only tools of type 'function' are supported, got ${JSON.stringify(t.type ?? null)}`);
      }
      const f = t.function;
      if (!isObject(f)) throw invalidParam(`${param}.function`, `'function' must be an object, got ${typeName(f)}`, 'invalid_type');
      if (typeof f.name !== 'string' || f.name === '') {
        throw invalidParam(`${param}.function.name`, `'function.name' must be a non-empty string, got ${typeName(f.name)}`, 'invalid_type');
      }
      if (f.description !== undefined && f.description !== null && typeof f.description !== 'string') {
        throw invalidParam(`${param}.function.description`, `'function.description' must be a string, got ${typeName(f.description)}`, 'invalid_type');
      }
      if (f.parameters !== undefined && f.parameters !== null && !isObject(f.parameters)) {
        throw invalidParam(`${param}.function.parameters`, `'function.parameters' must be a JSON Schema object, got ${typeName(f.parameters)}`, 'invalid_type');
      }
      return t as unknown as FunctionTool;
    });
    if (tools.length === 0) tools = undefined;
  }
  const toolChoice = parseToolChoice(body.tool_choice, tools);
  return { ...(tools ? { tools } : {}), toolChoice, parseToolCalls: tools !== undefined && toolChoice !== 'none' };
}

function parseToolChoice(v: unknown, tools: FunctionTool[] | undefined): ToolChoice {
  if (v === undefined || v === null) return tools ? 'auto' : 'none';
  if (v === 'none' || v === 'auto') return v;
  let choice: ToolChoice;
  if (v === 'required') choice = v;
  else if (isObject(v)) {
    if (v.type !== 'function') {
      throw invalidParam('tool_choice.type', `'tool_choice.type' must be 'function', got ${JSON.stringify(v.type ?? null)}`);
    }
    const f = v.function;
    if (!isObject(f) || typeof f.name !== 'string' || f.name === '') {
      throw invalidParam('tool_choice.function.name', "'tool_choice.function.name' must be a non-empty string", 'invalid_type');
    }
    if (tools && !tools.some((t) => t.function.name === f.name)) {
      throw invalidParam('tool_choice.function.name', `'tool_choice' names the function '${f.name}', which is not among 'tools'`);
    }
    choice = { type: 'function', function: { name: f.name } };
  } else {
    throw invalidParam(
      'tool_choice',
      `'tool_choice' must be 'none', 'auto', 'required' or {"type": "function", "function": {"name": ...}}, got ${JSON.stringify(v)}`,
    );
  }
  if (!tools) throw invalidParam('tool_choice', `'tool_choice' ${typeof choice === 'string' ? `'${choice}'` : 'naming a function'} needs 'tools'`);
  return choice;
}

/**
 * Validates the tool calls of assistant messages and the `tool` messages, and normalizes them for
 * the Qwen template: each call becomes `{id?, type: 'function', function: {name, arguments}}` with
 * `arguments` parsed from its JSON string to an object (as vLLM does, so the template's `tojson`
 * writes it with the spacing the model was trained on). `tool_calls: null` is dropped. Messages are
 * copied, not changed in place.
 *
 * @throws ApiError (400) naming the field, e.g. `messages[2].tool_calls[0].function.arguments`.
 */
export function normalizeToolMessages(messages: readonly ChatMessage[]): ChatMessage[] {
  return messages.map((m, i): ChatMessage => {
    const param = `messages[${i}]`;
    if (m.role === 'tool' && m.tool_call_id !== undefined && m.tool_call_id !== null && typeof m.tool_call_id !== 'string') {
      throw invalidParam(`${param}.tool_call_id`, `'tool_call_id' must be a string, got ${typeName(m.tool_call_id)}`, 'invalid_type');
    }
    if (!('tool_calls' in m)) return m;
    const { tool_calls: raw, ...rest } = m;
    if (raw === undefined || raw === null) return rest;
    if (m.role !== 'assistant') throw invalidParam(`${param}.tool_calls`, `'tool_calls' is accepted in assistant messages only, not in a ${m.role} message`);
    if (!Array.isArray(raw)) throw invalidParam(`${param}.tool_calls`, `'tool_calls' must be an array, got ${typeName(raw)}`, 'invalid_type');
    const calls = raw.map((c: unknown, j): ChatToolCall => {
      const p = `${param}.tool_calls[${j}]`;
      if (!isObject(c)) throw invalidParam(p, `each tool call must be an object, got ${typeName(c)}`, 'invalid_type');
      if (c.type !== undefined && c.type !== 'function') {
        throw invalidParam(`${p}.type`, `only tool calls of type 'function' are supported, got ${JSON.stringify(c.type)}`);
      }
      if (c.id !== undefined && c.id !== null && typeof c.id !== 'string') throw invalidParam(`${p}.id`, `'id' must be a string, got ${typeName(c.id)}`, 'invalid_type');
      const f = c.function;
      if (!isObject(f)) throw invalidParam(`${p}.function`, `'function' must be an object, got ${typeName(f)}`, 'invalid_type');
      if (typeof f.name !== 'string' || f.name === '') {
        throw invalidParam(`${p}.function.name`, `'function.name' must be a non-empty string, got ${typeName(f.name)}`, 'invalid_type');
      }
      let args: Record<string, unknown> | undefined;
      if (isObject(f.arguments)) args = f.arguments;
      else if (typeof f.arguments === 'string') args = parseJsonObject(f.arguments);
      if (!args) {
        throw invalidParam(`${p}.function.arguments`, `'function.arguments' must be a string holding a JSON object, got ${typeof f.arguments === 'string' ? JSON.stringify(f.arguments.slice(0, 80)) : typeName(f.arguments)}`);
      }
      return { ...(typeof c.id === 'string' ? { id: c.id } : {}), type: 'function', function: { name: f.name, arguments: args } };
    });
    return { ...rest, tool_calls: calls };
  });
}
