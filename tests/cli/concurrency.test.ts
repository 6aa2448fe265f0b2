/**
 * `vlmesh serve` under concurrent load through the official `openai` client: 16 streaming clients
 * at once (some with an image) all complete, and each streamed answer equals the same request run
 * alone (greedy). The engine batched them (fewer decode steps than tokens, from /metrics), and the
 * server answers correctly afterwards.
 */
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parsePrometheus, sampleValue } from '../support/prometheus-parse.ts';
import { startServe, stopServe } from '../support/serve.ts';

const golden = fileURLToPath(new URL('../fixtures/golden/', import.meta.url));
const image = `data:image/png;base64,${readFileSync(`${golden}e2e/img_b_256x256.png`).toString('base64')}`;

function messages(i: number): OpenAI.ChatCompletionMessageParam[] {
  const text = `Request ${i}: name ${i + 2} colours.`;
  if (i % 4 !== 3) return [{ role: 'user', content: text }];
  return [{ role: 'user', content: [{ type: 'image_url', image_url: { url: image } }, { type: 'text', text }] }];
}

describe('vlmesh serve with 16 concurrent streaming clients', () => {
  let server: ChildProcess | undefined;
  let url = '';
  let client: OpenAI;
  beforeAll(async () => {
    const s = await startServe(['--model', `${golden}realvocab`, '--dtype', 'f32', '--served-model-name', 'tiny']);
    server = s.p;
    url = s.url;
    client = new OpenAI({ baseURL: `${url}v1`, apiKey: 'unused', maxRetries: 0 });
  }, 60_000);
  afterAll(() => stopServe(server));

  async function streamed(i: number): Promise<string> {
    const stream = await client.chat.completions.create({ model: 'tiny', messages: messages(i), temperature: 0, max_tokens: 6, stream: true });
    let text = '';
    let finish: string | null = null;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta.content ?? '';
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    expect(finish).toBe('length');
    return text;
  }

  it('all complete, each equal to the same request alone', async () => {
    const together = await Promise.all(Array.from({ length: 16 }, (_, i) => streamed(i)));
    const metrics = parsePrometheus(await (await fetch(`${url}metrics`)).text());
    const value = (name: string) => sampleValue(metrics, name);
    // Batched: the 16 × 5 decode rows took far fewer steps.
    expect(value('vlmesh:decode_batch_rows_total')).toBe(16 * 5);
    expect(value('vlmesh:decode_steps_total')).toBeLessThan(16 * 5 * 0.5);
    for (let i = 0; i < 16; i++) {
      const alone = await client.chat.completions.create({ model: 'tiny', messages: messages(i), temperature: 0, max_tokens: 6 });
      expect(together[i], `request ${i}`).toBe(alone.choices[0].message.content);
    }
    expect(new Set(together).size).toBeGreaterThan(4); // different prompts, different answers
  }, 300_000);
});
