/**
 * Tool-call parsing (vLLM hermes style) over whole texts and over streams split at every
 * position, plus validation of `tools`, `tool_choice` and tool messages.
 */
import { describe, expect, it } from 'vitest';
import { ApiError } from '../../shared/api/errors.ts';
import {
  type ExtractedToolCalls,
  extractToolCalls,
  normalizeToolMessages,
  parseTools,
  randomToolCallId,
  type ToolCall,
  ToolCallStreamParser,
  type ToolStreamDelta,
} from '../../shared/api/tool-calls.ts';
import { Rng } from '../support/random.ts';

const counter = () => {
  let n = 0;
  return () => `call_${n++}`;
};
const extract = (text: string) => extractToolCalls(text, { newId: counter() });
const call = (i: number, name: string, args: string): ToolCall => ({ id: `call_${i}`, type: 'function', function: { name, arguments: args } });

/** Runs the stream parser over `pieces` and folds its deltas back into content + calls. */
function streamed(pieces: string[]): ExtractedToolCalls & { count: number; deltas: ToolStreamDelta[] } {
  const p = new ToolCallStreamParser({ newId: counter() });
  const deltas = [...pieces.flatMap((s) => p.push(s)), ...p.flush()];
  let content = '';
  const calls: ToolCall[] = [];
  for (const d of deltas) {
    expect(d.content === undefined || d.tool_calls === undefined).toBe(true);
    if (d.content !== undefined) {
      expect(d.content).not.toBe('');
      content += d.content;
    }
    for (const t of d.tool_calls ?? []) {
      if (t.id !== undefined) {
        // The header delta: a new call at the next index, arguments still empty.
        expect(t.index).toBe(calls.length);
        expect(t.type).toBe('function');
        expect(t.function.arguments).toBe('');
        calls.push({ id: t.id, type: 'function', function: { name: t.function.name ?? '', arguments: '' } });
      } else {
        expect(t.index).toBe(calls.length - 1);
        calls[t.index].function.arguments += t.function.arguments;
      }
    }
  }
  return { content: content === '' ? null : content, toolCalls: calls, count: p.toolCallCount, deltas };
}

const WEATHER = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris", "unit": "c"}}\n</tool_call>';
const TIME = '<tool_call>\n{"name": "get_time", "arguments": {"tz": "Europe/Paris"}}\n</tool_call>';

const CASES: [string, string][] = [
  ['plain text', 'Hello there.\n'],
  ['a single call', WEATHER],
  ['two calls', `${WEATHER}\n${TIME}`],
  ['text before and after', `  Let me check.\n${WEATHER}\nOne moment. \n`],
  ['malformed JSON', 'A <tool_call>\n{"name": "f", "arguments": {"x": }\n</tool_call> B'],
  ['a call between malformed blocks', `<tool_call>{"arguments": {}}</tool_call>${WEATHER}<tool_call>[1]</tool_call>`],
  ['string arguments', '<tool_call>{"name": "f", "arguments": "{\\"x\\": 1}"}</tool_call>'],
  ['unicode', `Voilà 👍 ${'<tool_call>'}{"name": "traduire", "arguments": {"texte": "日本語 😀", "é": "\\u00e9"}}</tool_call> fin ✓`],
  ['an unclosed last call', `ok ${'<tool_call>'}\n{"name": "f", "arguments": {"a": [1, 2]}}\n`],
  ['an unclosed, incomplete call', 'ok <tool_call>\n{"name": "f", "argum'],
  ['a partial marker at the end', 'text <tool_ca'],
  ['marker-like text', 'a <tool> b <tool_cal c </tool_call> d <<tool_call>{"name": "g", "arguments": {}}</tool_call>'],
  ['only whitespace around a call', `\n\n${WEATHER}\n\n`],
];

describe('extractToolCalls', () => {
  it('finds a single call; content is null without other text', () => {
    expect(extract(WEATHER)).toEqual({ content: null, toolCalls: [call(0, 'get_weather', '{"city":"Paris","unit":"c"}')] });
  });

  it('finds several calls and keeps the text outside them, trimmed', () => {
    expect(extract(`  Let me check.\n${WEATHER}\n${TIME}\nDone. `)).toEqual({
      content: 'Let me check.\n\n\nDone.',
      toolCalls: [call(0, 'get_weather', '{"city":"Paris","unit":"c"}'), call(1, 'get_time', '{"tz":"Europe/Paris"}')],
    });
  });

  it('leaves malformed blocks in the content', () => {
    const bad = [
      '<tool_call>{"name": "f", "arguments": {"x": }}</tool_call>', // not JSON
      '<tool_call>{"arguments": {}}</tool_call>', // no name
      '<tool_call>{"name": 3, "arguments": {}}</tool_call>', // name not a string
      '<tool_call>{"name": "f"}</tool_call>', // no arguments
      '<tool_call>{"name": "f", "arguments": [1]}</tool_call>', // arguments not an object
      '<tool_call>{"name": "f", "arguments": "not json"}</tool_call>', // string arguments not JSON
      '<tool_call>["f", {}]</tool_call>', // not an object
    ];
    for (const b of bad) expect(extract(`x ${b} y`)).toEqual({ content: `x ${b} y`, toolCalls: [] });
    expect(extract(`${bad[0]}\n${WEATHER}`)).toEqual({ content: bad[0], toolCalls: [call(0, 'get_weather', '{"city":"Paris","unit":"c"}')] });
  });

  it('keeps string arguments as written and unicode intact', () => {
    expect(extract('<tool_call>{"name": "f", "arguments": "{\\"x\\": 1}"}</tool_call>').toolCalls).toEqual([call(0, 'f', '{"x": 1}')]);
    const r = extract('Voilà 👍<tool_call>{"name": "traduire", "arguments": {"texte": "日本語 😀"}}</tool_call>');
    expect(r.content).toBe('Voilà 👍');
    expect(r.toolCalls[0].function.name).toBe('traduire');
    expect(JSON.parse(r.toolCalls[0].function.arguments)).toEqual({ texte: '日本語 😀' });
  });

  it('takes an unclosed last block as a call when its JSON is complete, else as content', () => {
    expect(extract('<tool_call>\n{"name": "f", "arguments": {}}\n').toolCalls).toEqual([call(0, 'f', '{}')]);
    expect(extract('ok <tool_call>{"name": "f"')).toEqual({ content: 'ok <tool_call>{"name": "f"', toolCalls: [] });
  });

  it('returns plain text unchanged but trimmed', () => {
    expect(extract(' hi \n')).toEqual({ content: 'hi', toolCalls: [] });
    expect(extract('')).toEqual({ content: null, toolCalls: [] });
  });

  it('makes random ids by default', () => {
    const ids = extractToolCalls(`${WEATHER}${TIME}`).toolCalls.map((c) => c.id);
    expect(ids[0]).toMatch(/^call_[0-9a-f]{24}$/);
    expect(ids[0]).not.toBe(ids[1]);
    expect(randomToolCallId()).toMatch(/^call_[0-9a-f]{24}$/);
  });
});

describe('ToolCallStreamParser', () => {
  it.each(CASES)('reproduces the non-streaming result for %s, split at every position', (_, text) => {
    const want = extract(text);
    expect(streamed([text])).toMatchObject(want);
    for (let i = 0; i <= text.length; i++) {
      for (const j of [i, i + 1, i + 7]) {
        const pieces = [text.slice(0, i), text.slice(i, Math.min(j, text.length)), text.slice(Math.min(j, text.length))];
        const got = streamed(pieces);
        expect(got, JSON.stringify(pieces)).toMatchObject(want);
        expect(got.count).toBe(want.toolCalls.length);
      }
    }
  });

  it('reproduces the non-streaming result for one character per delta and random splits', () => {
    const rng = new Rng(1234);
    for (const [, text] of CASES) {
      const want = extract(text);
      expect(streamed([...text])).toMatchObject(want);
      for (let k = 0; k < 20; k++) {
        const pieces: string[] = [];
        for (let i = 0; i < text.length; ) {
          const n = 1 + Math.floor(rng.next() * 6);
          pieces.push(text.slice(i, i + n));
          i += n;
        }
        expect(streamed(pieces), JSON.stringify(pieces)).toMatchObject(want);
      }
    }
  });

  it('emits content as soon as it cannot start a marker, then a header and the arguments per call', () => {
    const p = new ToolCallStreamParser({ newId: counter() });
    expect(p.push('Sure')).toEqual([{ content: 'Sure' }]);
    expect(p.push('. <tool')).toEqual([{ content: '.' }]);
    expect(p.push('_call>\n{"name": "get_time", ')).toEqual([]);
    expect(p.push('"arguments": {"tz": "UTC"}}\n</tool_call>')).toEqual([
      { tool_calls: [{ index: 0, id: 'call_0', type: 'function', function: { name: 'get_time', arguments: '' } }] },
      { tool_calls: [{ index: 0, function: { arguments: '{"tz":"UTC"}' } }] },
    ]);
    expect(p.push('\n')).toEqual([]);
    expect(p.flush()).toEqual([]);
    expect(p.toolCallCount).toBe(1);
    expect(() => p.push('x')).toThrow();
  });

  it('releases a held partial marker at the end as content', () => {
    const p = new ToolCallStreamParser();
    expect(p.push('a <tool_')).toEqual([{ content: 'a' }]);
    expect(p.flush()).toEqual([{ content: ' <tool_' }]);
    expect(p.toolCallCount).toBe(0);
  });
});

describe('parseTools', () => {
  const fn = (name: string, over: Record<string, unknown> = {}) => ({
    type: 'function',
    function: { name, description: 'd', parameters: { type: 'object', properties: {} }, ...over },
  });
  const fails = (body: Record<string, unknown>, param: string) => {
    try {
      parseTools(body);
    } catch (e) {
      expect(e).toBeInstanceOf(ApiError);
      expect((e as ApiError).status).toBe(400);
      expect((e as ApiError).param).toBe(param);
      return;
    }
    throw new Error(`accepted ${JSON.stringify(body)}`);
  };

  it('accepts function tools with the usual tool_choice values', () => {
    expect(parseTools({})).toEqual({ toolChoice: 'none', parseToolCalls: false });
    expect(parseTools({ tools: [] })).toEqual({ toolChoice: 'none', parseToolCalls: false });
    const tools = [fn('a'), fn('b')];
    expect(parseTools({ tools })).toEqual({ tools, toolChoice: 'auto', parseToolCalls: true });
    expect(parseTools({ tools, tool_choice: 'none' })).toMatchObject({ tools, toolChoice: 'none', parseToolCalls: false });
    expect(parseTools({ tools, tool_choice: 'required' })).toMatchObject({ toolChoice: 'required', parseToolCalls: true });
    expect(parseTools({ tools, tool_choice: { type: 'function', function: { name: 'b' } } })).toMatchObject({
      toolChoice: { type: 'function', function: { name: 'b' } },
      parseToolCalls: true,
    });
    expect(parseTools({ tools: [{ type: 'function', function: { name: 'noargs' } }] }).parseToolCalls).toBe(true);
    expect(parseTools({ tool_choice: 'auto' }).parseToolCalls).toBe(false);
  });

  it('rejects malformed tools and tool_choice naming the field', () => {
    fails({ tools: {} }, 'tools');
    fails({ tools: ['x'] }, 'tools[0]');
    fails({ tools: [fn('a'), { type: 'retrieval', function: { name: 'b' } }] }, 'tools[1].type');
    fails({ tools: [{ type: 'function' }] }, 'tools[0].function');
    fails({ tools: [fn('')] }, 'tools[0].function.name');
    fails({ tools: [{ type: 'function', function: { name: 7 } }] }, 'tools[0].function.name');
    fails({ tools: [fn('a', { parameters: 'object' })] }, 'tools[0].function.parameters');
    fails({ tools: [fn('a', { description: 1 })] }, 'tools[0].function.description');
    fails({ tools: [fn('a')], tool_choice: 'always' }, 'tool_choice');
    fails({ tools: [fn('a')], tool_choice: { type: 'tool', function: { name: 'a' } } }, 'tool_choice.type');
    fails({ tools: [fn('a')], tool_choice: { type: 'function' } }, 'tool_choice.function.name');
    fails({ tools: [fn('a')], tool_choice: { type: 'function', function: { name: 'b' } } }, 'tool_choice.function.name');
    fails({ tool_choice: 'required' }, 'tool_choice');
  });
});

describe('normalizeToolMessages', () => {
  it('parses tool-call arguments to objects for the template and drops null tool_calls', () => {
    const messages = [
      { role: 'user', content: 'Weather?' },
      {
        role: 'assistant',
        content: '',
        tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city": "Paris"}' } }],
      },
      { role: 'tool', tool_call_id: 'call_1', content: '{"temp": 21}' },
      { role: 'assistant', content: 'Warm.', tool_calls: null },
    ];
    const out = normalizeToolMessages(messages as never);
    expect(out[1].tool_calls).toEqual([{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: { city: 'Paris' } } }]);
    expect(out[2]).toEqual(messages[2]);
    expect('tool_calls' in out[3]).toBe(false);
    // Not changed in place.
    expect(messages[1].tool_calls?.[0].function.arguments).toBe('{"city": "Paris"}');
  });

  it('rejects malformed tool calls naming the field', () => {
    const fails = (m: Record<string, unknown>, param: string) => {
      expect(() => normalizeToolMessages([m as never])).toThrow(ApiError);
      try {
        normalizeToolMessages([m as never]);
      } catch (e) {
        expect((e as ApiError).param).toBe(param);
      }
    };
    const a = (tool_calls: unknown) => ({ role: 'assistant', content: '', tool_calls });
    fails(a({}), 'messages[0].tool_calls');
    fails(a([1]), 'messages[0].tool_calls[0]');
    fails(a([{ type: 'x', function: { name: 'f', arguments: '{}' } }]), 'messages[0].tool_calls[0].type');
    fails(a([{ function: { arguments: '{}' } }]), 'messages[0].tool_calls[0].function.name');
    fails(a([{ function: { name: 'f', arguments: '{oops' } }]), 'messages[0].tool_calls[0].function.arguments');
    fails(a([{ function: { name: 'f', arguments: '[1]' } }]), 'messages[0].tool_calls[0].function.arguments');
    fails({ role: 'user', content: 'x', tool_calls: [] }, 'messages[0].tool_calls');
    fails({ role: 'tool', content: 'x', tool_call_id: 5 }, 'messages[0].tool_call_id');
  });
});
