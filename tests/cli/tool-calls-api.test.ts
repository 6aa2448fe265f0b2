/**
 * Tools through `vlmesh serve --model` and the official `openai` client. The tiny checkpoint has
 * random weights and never writes `<tool_call>` blocks itself, so this checks the wiring: the
 * template renders the tools (more prompt tokens), answers stay well-formed, multi-turn tool
 * conversations are accepted, and malformed `tools` / `tool_choice` get precise 400s. The parsing
 * of calls out of the output is covered by tests/unit/tool-calls.test.ts.
 */
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServe, stopServe } from '../support/serve.ts';

const golden = fileURLToPath(new URL('../fixtures/golden/', import.meta.url));
const MODEL = 'realvocab';



const tools: OpenAI.ChatCompletionTool[] = [
  {
    type: 'function',
    function: {
      name: 'get_weather',
      description: 'Current weather in a city',
      parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
    },
  },
];
const question: OpenAI.ChatCompletionMessageParam[] = [{ role: 'user', content: 'What is the weather in Paris?' }];

describe('vlmesh serve --model: tools', () => {
  let server: { p: ChildProcess; url: string } | undefined;
  let client: OpenAI;

  beforeAll(async () => {
    server = await startServe(['--model', `${golden}realvocab`, '--dtype', 'f32']);
    client = new OpenAI({ baseURL: `${server.url}v1`, apiKey: 'unused', maxRetries: 0 });
  }, 40_000);
  afterAll(() => stopServe(server?.p));

  it('renders the tools into the prompt and answers a well-formed message', async () => {
    const base = { model: MODEL, messages: question, temperature: 0, max_tokens: 3 };
    const plain = await client.chat.completions.create(base);
    const withTools = await client.chat.completions.create({ ...base, tools });
    expect(withTools.usage!.prompt_tokens).toBeGreaterThan(plain.usage!.prompt_tokens + 50);
    const choice = withTools.choices[0];
    expect(choice.message.role).toBe('assistant');
    expect(typeof choice.message.content).toBe('string');
    expect(choice.message.tool_calls).toBeUndefined();
    expect(choice.finish_reason).toBe('length');
    expect(withTools.usage!.completion_tokens).toBe(3);
    // tool_choice 'none' still shows the tools to the model (as vLLM does), and parses nothing.
    const none = await client.chat.completions.create({ ...base, tools, tool_choice: 'none' });
    expect(none.usage!.prompt_tokens).toBe(withTools.usage!.prompt_tokens);
    expect(none.choices[0].message.content).toBe(choice.message.content);
    // 'required' and a named function are accepted as hints.
    const named = await client.chat.completions.create({ ...base, tools, tool_choice: { type: 'function', function: { name: 'get_weather' } } });
    expect(named.choices[0].finish_reason).toBe('length');
    const required = await client.chat.completions.create({ ...base, tools, tool_choice: 'required' });
    expect(required.choices[0].finish_reason).toBe('length');
  });

  it('streams well-formed chunks with tools', async () => {
    const stream = await client.chat.completions.create({
      model: MODEL,
      messages: question,
      tools,
      temperature: 0,
      max_tokens: 3,
      stream: true,
      stream_options: { include_usage: true },
    });
    const finish: (string | null)[] = [];
    let usage: OpenAI.CompletionUsage | null | undefined;
    for await (const c of stream) {
      expect(c.object).toBe('chat.completion.chunk');
      for (const ch of c.choices) {
        expect(ch.delta.tool_calls).toBeUndefined();
        if (ch.delta.content !== undefined) expect(typeof ch.delta.content).toBe('string');
        finish.push(ch.finish_reason);
      }
      if (c.usage) usage = c.usage;
    }
    expect(finish.at(-1)).toBe('length');
    expect(finish.slice(0, -1).every((f) => f === null)).toBe(true);
    expect(usage?.completion_tokens).toBe(3);
  });

  it('accepts a multi-turn conversation with an assistant tool call and a tool result', async () => {
    const base = { model: MODEL, tools, temperature: 0, max_tokens: 2 };
    const first = await client.chat.completions.create({ ...base, messages: question });
    const messages: OpenAI.ChatCompletionMessageParam[] = [
      ...question,
      {
        role: 'assistant',
        content: null,
        tool_calls: [{ id: 'call_abc', type: 'function', function: { name: 'get_weather', arguments: '{"city": "Paris"}' } }],
      },
      { role: 'tool', tool_call_id: 'call_abc', content: '{"temperature_c": 21, "sky": "clear"}' },
    ];
    const r = await client.chat.completions.create({ ...base, messages });
    expect(r.choices[0].finish_reason).toBe('length');
    expect(typeof r.choices[0].message.content).toBe('string');
    // The call and the result are in the prompt.
    expect(r.usage!.prompt_tokens).toBeGreaterThan(first.usage!.prompt_tokens + 20);
    // Arguments given as an object are rendered alike.
    const asObject = structuredClone(messages) as unknown as { tool_calls?: { function: { arguments: unknown } }[] }[];
    asObject[1].tool_calls![0].function.arguments = { city: 'Paris' };
    const r2 = await client.chat.completions.create({ ...base, messages: asObject as OpenAI.ChatCompletionMessageParam[] });
    expect(r2.usage!.prompt_tokens).toBe(r.usage!.prompt_tokens);
  });

  it('rejects malformed tools, tool_choice and tool calls with precise 400s', async () => {
    const bad = async (over: Record<string, unknown>, code: string, param: string) => {
      const r = await fetch(`${server!.url}v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: MODEL, messages: question, max_tokens: 1, ...over }),
      });
      expect(r.status, JSON.stringify(over)).toBe(400);
      const j = await r.json();
      expect(j.error.code).toBe(code);
      expect(j.error.param).toBe(param);
    };
    await bad({ tools: { type: 'function' } }, 'invalid_type', 'tools');
    await bad({ tools: [{ type: 'code_interpreter' }] }, 'invalid_value', 'tools[0].type');
    await bad({ tools: [{ type: 'function', function: { description: 'x' } }] }, 'invalid_type', 'tools[0].function.name');
    await bad({ tools: [{ type: 'function', function: { name: 'f', parameters: [] } }] }, 'invalid_type', 'tools[0].function.parameters');
    await bad({ tools, tool_choice: 'sometimes' }, 'invalid_value', 'tool_choice');
    await bad({ tools, tool_choice: { type: 'function', function: { name: 'nope' } } }, 'invalid_value', 'tool_choice.function.name');
    await bad({ tool_choice: 'required' }, 'invalid_value', 'tool_choice');
    await bad(
      { tools, messages: [...question, { role: 'assistant', tool_calls: [{ type: 'function', function: { name: 'get_weather', arguments: '{bad' } }] }] },
      'invalid_value',
      'messages[1].tool_calls[0].function.arguments',
    );
    // Still serving.
    const r = await client.chat.completions.create({ model: MODEL, messages: question, tools, max_tokens: 1 });
    expect(r.choices[0].finish_reason).toBe('length');
  });
});
