/**
 * Chat template rendering and the processor's pad expansion against the official processor
 * (golden/e2e/case_*.json: messages → prompt → input_ids / mm_token_type_ids; golden/realvocab
 * case_{text,image,video}.json: input_ids from grids, fps and frame indices), plus Python's
 * "{:.1f}" formatting of the video timestamps.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  buildPromptInputs,
  type ChatMessage,
  ChatTemplate,
  expandVisionPlaceholders,
  type GridThw,
  resolveChatTemplate,
  specialTokenVariables,
  type VisionTokens,
  videoTimestamps,
  visionTokens,
} from '../../shared/text/chat-template.ts';
import { ChatTemplateError, PromptExpansionError } from '../../shared/text/errors.ts';
import { formatPyFixed, formatPyFixed1 } from '../../shared/text/py-format.ts';
import { Tokenizer } from '../../shared/text/tokenizer.ts';
import { type GoldenCase, type GoldenTensor, rows3, tensor } from '../support/golden.ts';

const golden = fileURLToPath(new URL('../fixtures/golden/', import.meta.url));
const readJson = (p: string) => JSON.parse(readFileSync(golden + p, 'utf8'));

const config = readJson('realvocab/config.json');
const tokenizerConfig = readJson('realvocab/tokenizer_config.json');
const templateText = readFileSync(`${golden}e2e/processor/chat_template.jinja`, 'utf8');
const e2eCases: [string, GoldenCase][] = readdirSync(`${golden}e2e`)
  .filter((f) => /^case_.*\.json$/.test(f))
  .map((f) => [f, readJson(`e2e/${f}`) as GoldenCase]);

let tok: Tokenizer;
let vt: VisionTokens;
let tpl: ChatTemplate;
beforeAll(() => {
  tok = Tokenizer.fromJSON(readJson('realvocab/tokenizer.json'));
  vt = visionTokens(config, tok);
  tpl = new ChatTemplate(resolveChatTemplate(readJson('realvocab/chat_template.json')), specialTokenVariables(tokenizerConfig));
});

describe('chat template + pad expansion vs the official processor (e2e cases)', () => {
  it('finds the same template in chat_template.json, tokenizer_config.json and the .jinja file', () => {
    expect(resolveChatTemplate(readJson('realvocab/chat_template.json'))).toBe(templateText);
    expect(resolveChatTemplate(tokenizerConfig)).toBe(templateText);
    expect(resolveChatTemplate(readJson('e2e/processor/chat_template.json'))).toBe(templateText);
    expect(resolveChatTemplate({ chat_template: [{ name: 'default', template: 'x' }] })).toBe('x');
    expect(() => resolveChatTemplate({})).toThrow(ChatTemplateError);
  });

  it('reads the vision token ids from config.json and their strings from the tokenizer', () => {
    expect(vt).toEqual({
      imageTokenId: config.image_token_id,
      videoTokenId: config.video_token_id,
      visionStartTokenId: config.vision_start_token_id,
      visionEndTokenId: config.vision_end_token_id,
      imageToken: '<|image_pad|>',
      videoToken: '<|video_pad|>',
      visionStart: '<|vision_start|>',
      visionEnd: '<|vision_end|>',
    });
  });

  it.each(e2eCases)('%s', (_f, c) => {
    const kwargs = c.chat_template_kwargs as { add_generation_prompt: boolean };
    const prompt = tpl.render(c.messages as ChatMessage[], { addGenerationPrompt: kwargs.add_generation_prompt });
    expect(prompt).toBe(c.prompt);
    expect(tok.encode(prompt)).toEqual(c.prompt_ids);
    const grids = rows3(c.image_grid_thw as GoldenTensor | undefined);
    const r = buildPromptInputs(tok, prompt, vt, { imageGrids: grids, mergeSize: config.vision_config.spatial_merge_size });
    expect(r.inputIds).toEqual(tensor(c, 'input_ids').data);
    expect(Array.from(r.mmTokenTypeIds)).toEqual(tensor(c, 'mm_token_type_ids').data);
  });
});

describe('realvocab cases: input_ids from grids, fps and frame indices', () => {
  // These case files carry no messages; the conversations below are the ones their input_ids
  // decode to (user turn, generation prompt).
  const conversations: Record<string, ChatMessage[]> = {
    text: [{ role: 'user', content: 'Hello world, how are you?' }],
    image: [{ role: 'user', content: [{ type: 'image' }, { type: 'image' }, { type: 'text', text: 'Describe these image.' }] }],
    video: [{ role: 'user', content: [{ type: 'video' }, { type: 'text', text: 'What happens in the video?' }] }],
  };
  it.each(Object.keys(conversations))('case_%s', (name) => {
    const c = readJson(`realvocab/case_${name}.json`) as GoldenCase;
    const prompt = tpl.render(conversations[name], { addGenerationPrompt: true });
    const videos = rows3(c.video_grid_thw as GoldenTensor | undefined).map((gridThw) => ({
      gridThw,
      timestamps: videoTimestamps(c.frame_indices as number[], c.fps as number),
    }));
    if (videos.length > 0) {
      expect(videos[0].timestamps).toEqual(c.timestamps_seconds);
      expect(videos[0].timestamps.map((t) => `<${formatPyFixed1(t)} seconds>`)).toEqual(c.timestamp_strings);
    }
    const r = buildPromptInputs(tok, prompt, vt, {
      imageGrids: rows3(c.image_grid_thw as GoldenTensor | undefined),
      videos,
      mergeSize: config.vision_config.spatial_merge_size,
    });
    expect(r.inputIds).toEqual(tensor(c, 'input_ids').data);
    expect(Array.from(r.mmTokenTypeIds)).toEqual(tensor(c, 'mm_token_type_ids').data);
  });
});

describe('video timestamps and Python "{:.1f}"', () => {
  it('matches the official timestamps and strings (preprocess.json)', () => {
    const pre = readJson('preprocess.json').video_timestamps as {
      frame_indices: number[];
      fps: number;
      timestamps: number[];
      strings: string[];
    }[];
    for (const v of pre) {
      const ts = videoTimestamps(v.frame_indices, v.fps);
      expect(ts).toEqual(v.timestamps);
      expect(ts.map((t) => `<${formatPyFixed1(t)} seconds>`)).toEqual(v.strings);
    }
  });

  it('rounds the exact binary value half to even, like Python', () => {
    // [x, Python format(x, '.1f')]
    const table: [number, string][] = [
      [0.25, '0.2'], [1.25, '1.2'], [0.35, '0.3'], [0.45, '0.5'], [0.05, '0.1'], [0.15, '0.1'], [2.5, '2.5'],
      [3.75, '3.8'], [0.75, '0.8'], [-0.25, '-0.2'], [-0.04, '-0.0'], [-0, '-0.0'], [0, '0.0'],
      [1e22, '10000000000000000000000.0'], [123456.25, '123456.2'], [0.95, '0.9'], [9.95, '9.9'], [99.95, '100.0'],
      [1 / 3, '0.3'], [2 / 3, '0.7'], [5e-324, '0.0'],
    ];
    for (const [x, want] of table) expect(formatPyFixed1(x), String(x)).toBe(want);
    expect(formatPyFixed1(Number.MAX_VALUE)).toBe(`${BigInt(Number.MAX_VALUE)}.0`);
    expect([formatPyFixed1(Number.NaN), formatPyFixed1(Infinity), formatPyFixed1(-Infinity)]).toEqual(['nan', 'inf', '-inf']);
    // Other precisions: [x, digits, Python format(x, f'.{digits}f')]
    const more: [number, number, string][] = [
      [2.675, 2, '2.67'], [1.005, 2, '1.00'], [0.125, 2, '0.12'], [0.375, 2, '0.38'], [1.5, 0, '2'], [2.5, 0, '2'],
      [3.5, 0, '4'], [0.5, 0, '0'], [-1.5, 0, '-2'], [1e-7, 10, '0.0000001000'], [0.1, 20, '0.10000000000000000555'],
    ];
    for (const [x, d, want] of more) expect(formatPyFixed(x, d), `${x} .${d}f`).toBe(want);
  });

  it('agrees with toFixed(1) wherever the value is not an exact tie', () => {
    let seed = 12345;
    const rand = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
    for (let i = 0; i < 2000; i++) {
      const x = Math.round(rand() * 1e6) / 1e3 - 500; // three decimals: many near-ties, no exact ones except k/4
      if (Number.isInteger(x * 4) && !Number.isInteger(x * 2)) continue;
      expect(formatPyFixed1(x), String(x)).toBe(x.toFixed(1));
    }
  });

  it('pads an odd frame count with the last frame', () => {
    expect(videoTimestamps([0, 1, 2, 3, 4], 1)).toEqual([0.5, 2.5, 4]);
    expect(videoTimestamps([], 2)).toEqual([]);
    expect(() => videoTimestamps([0, 1], 0)).toThrow(PromptExpansionError);
  });
});

const triple = (pad: string) => `<|vision_start|>${pad}<|vision_end|>`;
const img = '<|image_pad|>';
const vid = '<|video_pad|>';

describe('pad expansion', () => {

  it('expands images in order: t·h·w/4 pads each', () => {
    const grids: GridThw[] = [[1, 4, 6], [1, 2, 4]];
    const out = expandVisionPlaceholders(`a${triple(img)}b${triple(img)}c`, vt, { imageGrids: grids });
    expect(out).toBe(`a${triple(img.repeat(6))}b${triple(img.repeat(2))}c`);
  });

  it('expands each video into timestamped frame groups (4.57 layout)', () => {
    const video = { gridThw: [3, 4, 6] as GridThw, timestamps: [0.25, 1.25, 2.35] };
    const out = expandVisionPlaceholders(`x${triple(vid)}y`, vt, { videos: [video] });
    const group = triple(vid.repeat(6));
    expect(out).toBe(`x<0.2 seconds>${group}<1.2 seconds>${group}<2.4 seconds>${group}y`);
  });

  it('prefers a full <|vision_start|><|video_pad|><|vision_end|> triple, else a bare pad', () => {
    const v = (ts: number) => ({ gridThw: [1, 2, 2] as GridThw, timestamps: [ts] });
    // Bare pad first in the text, but the triple is taken first (as the official processor does).
    const out = expandVisionPlaceholders(`${vid}|${triple(vid)}`, vt, { videos: [v(1), v(2)] });
    expect(out).toBe(`<2.0 seconds>${triple(vid)}|<1.0 seconds>${triple(vid)}`);
  });

  it('mixes images and videos', () => {
    const prompt = tpl.render(
      [{ role: 'user', content: [{ type: 'video', video: 'v.mp4' }, { type: 'image', image: 'a.png' }, { type: 'text', text: 'Compare.' }] }],
      { addGenerationPrompt: true },
    );
    const r = buildPromptInputs(tok, prompt, vt, {
      imageGrids: [[1, 4, 4]],
      videos: [{ gridThw: [2, 2, 4], timestamps: videoTimestamps([0, 12, 24, 36], 24) }],
    });
    expect(r.text).toBe(
      '<|im_start|>user\n' +
        `<0.2 seconds>${triple(vid.repeat(2))}<1.2 seconds>${triple(vid.repeat(2))}` +
        `${triple(img.repeat(4))}Compare.<|im_end|>\n<|im_start|>assistant\n`,
    );
    const types = Array.from(r.mmTokenTypeIds);
    expect(types.filter((t) => t === 2).length).toBe(4);
    expect(types.filter((t) => t === 1).length).toBe(4);
    expect(r.inputIds.filter((id) => id === vt.visionStartTokenId).length).toBe(3);
  });

  it('rejects placeholders that do not match the inputs', () => {
    expect(() => expandVisionPlaceholders(`${img}${img}`, vt, { imageGrids: [[1, 2, 2]] })).toThrow(PromptExpansionError);
    expect(() => expandVisionPlaceholders('no pads', vt, { imageGrids: [[1, 2, 2]] })).toThrow(PromptExpansionError);
    expect(() => expandVisionPlaceholders(triple(vid), vt, { videos: [], strict: true })).toThrow(PromptExpansionError);
    expect(() => expandVisionPlaceholders(triple(vid), vt, { videos: [{ gridThw: [2, 2, 2], timestamps: [0.5] }] })).toThrow(
      /2 temporal patches but only 1 timestamps/,
    );
    // Without inputs and without strict, literal pads pass through as the official processor leaves them.
    expect(expandVisionPlaceholders(`say ${img}`, vt)).toBe(`say ${img}`);
    expect(() => expandVisionPlaceholders(`say ${img}`, vt, { strict: true })).toThrow(PromptExpansionError);
  });

  it('does not turn a typed "<|placeholder|>" into pads', () => {
    const out = expandVisionPlaceholders(`<|placeholder|>${triple(img)}`, vt, { imageGrids: [[1, 2, 2]] });
    expect(out).toBe(`<|placeholder|>${triple(img)}`);
  });
});

describe('template features', () => {
  it('renders add_vision_id labels', () => {
    const p = tpl.render(
      [
        { role: 'user', content: [{ type: 'image' }, { type: 'video' }, { type: 'image_url', image_url: 'u' }, { type: 'text', text: 'hi' }] },
      ],
      { addVisionId: true },
    );
    expect(p).toBe(
      `<|im_start|>user\nPicture 1: ${triple(img)}Video 1: ${triple(vid)}Picture 2: ${triple(img)}hi<|im_end|>\n`,
    );
  });

  it('renders tools and tool calls as the Python template does (json.dumps spacing, no ASCII escaping)', () => {
    const tools = [
      {
        type: 'function',
        function: {
          name: 'get_weather',
          description: 'Météo 天气',
          parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
        },
      },
    ];
    const messages: ChatMessage[] = [
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'Weather in Paris?' },
      { role: 'assistant', content: '', tool_calls: [{ type: 'function', function: { name: 'get_weather', arguments: { city: 'Paris' } } }] },
      { role: 'tool', content: '{"temp": 21}' },
      { role: 'tool', content: [{ type: 'image' }, { type: 'text', text: 'map' }] },
    ];
    const p = tpl.render(messages, { tools, addGenerationPrompt: true });
    expect(p).toBe(
      '<|im_start|>system\nBe brief.\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n' +
        'You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n' +
        '{"type": "function", "function": {"name": "get_weather", "description": "Météo 天气", "parameters": ' +
        '{"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}\n</tools>\n\n' +
        'For each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n' +
        '<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call><|im_end|>\n' +
        '<|im_start|>user\nWeather in Paris?<|im_end|>\n' +
        '<|im_start|>assistant\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call><|im_end|>\n' +
        '<|im_start|>user\n<tool_response>\n{"temp": 21}\n</tool_response>\n<tool_response>\n' +
        `${triple(img)}map\n</tool_response><|im_end|>\n<|im_start|>assistant\n`,
    );
  });

  it('reports template errors as ChatTemplateError', () => {
    expect(() => new ChatTemplate('{% if %}')).toThrow(ChatTemplateError);
    const raising = new ChatTemplate("{{ raise_exception('bad role') }}");
    expect(() => raising.render([{ role: 'user', content: 'x' }])).toThrow(/bad role/);
    expect(() => tpl.render([])).toThrow(ChatTemplateError);
  });
});
