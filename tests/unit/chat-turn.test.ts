import { describe, expect, it } from 'vitest';
import type { Engine, GenerationEvent, GenerationRequest } from '../../shared/engine/engine.ts';
import type { StoredMessage } from '../../web/src/chat/store.ts';
import { titleFrom } from '../../web/src/chat/store.ts';
import { buildRequest, runTurn } from '../../web/src/chat/turn.ts';

const blob = (bytes: number[], type: string) => new Blob([new Uint8Array(bytes)], { type });

describe('buildRequest', () => {
  const history: StoredMessage[] = [
    {
      id: '1',
      role: 'user',
      text: 'first',
      attachments: [
        { kind: 'image', name: 'a.png', mimeType: 'image/png', data: blob([1], 'image/png') },
        { kind: 'video', name: 'old.mp4', mimeType: 'video/mp4', data: blob([9], 'video/mp4') },
      ],
    },
    { id: '2', role: 'assistant', text: 'an answer' },
    {
      id: '3',
      role: 'user',
      text: 'second',
      attachments: [
        { kind: 'video', name: 'new.webm', mimeType: 'video/webm', data: blob([7, 7], 'video/webm') },
        { kind: 'image', name: 'b.jpg', mimeType: 'image/jpeg', data: blob([2], 'image/jpeg') },
      ],
    },
  ];

  it('turns the conversation into messages with image parts in order and the latest video only', async () => {
    const req = await buildRequest({ history, settings: { systemPrompt: 'Be brief.', temperature: 0.2, maxTokens: 9 }, sessionId: 'c1' });
    expect(req.messages).toEqual([
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: [{ type: 'image' }, { type: 'text', text: 'first' }] },
      { role: 'assistant', content: 'an answer' },
      { role: 'user', content: [{ type: 'video' }, { type: 'image' }, { type: 'text', text: 'second' }] },
    ]);
    expect(req.images.map((i) => [...i.bytes])).toEqual([[1], [2]]);
    expect(req.images.map((i) => i.mimeType)).toEqual(['image/png', 'image/jpeg']);
    expect(req.videoFile && [...req.videoFile.bytes]).toEqual([7, 7]);
    expect(req.videoFile?.mimeType).toBe('video/webm');
    expect(req.sampling).toEqual({ maxTokens: 9, temperature: 0.2, topP: 1, topK: 0 });
    expect(req.sessionId).toBe('c1');
  });

  it('hands the video to a frame sampler for in-tab engines, and can leave max_tokens to the server', async () => {
    const seen: number[][] = [];
    const req = await buildRequest({
      history,
      settings: { systemPrompt: '  ', temperature: 0, maxTokens: 5 },
      autoMaxTokens: true,
      sampleVideo: async (b) => {
        seen.push([...new Uint8Array(await b.arrayBuffer())]);
        return { frames: [new Uint8Array(3)], width: 1, height: 1, frameIndices: [0], fps: 24 };
      },
    });
    expect(seen).toEqual([[7, 7]]);
    expect(req.video?.width).toBe(1);
    expect(req.videoFile).toBeUndefined();
    expect(req.messages[0]!.role).toBe('user'); // blank system prompt: none
    expect(req.sampling.maxTokensAuto).toBe(true);
  });
});

/** An engine that replays fixed events with a delay between them. */
class ScriptedEngine implements Engine {
  readonly modelId = 'scripted';
  constructor(
    private readonly events: GenerationEvent[],
    private readonly delayMs: number,
  ) {}
  async *stream(_r: GenerationRequest): AsyncGenerator<GenerationEvent> {
    for (const ev of this.events) {
      await new Promise((r) => setTimeout(r, this.delayMs));
      yield ev;
    }
  }
  stats() {
    return { running: 0, waiting: 0, kvUsage: 0 };
  }
  async close() {}
}

describe('runTurn', () => {
  it('accumulates the text and measures TTFT and decode tokens/s', async () => {
    const engine = new ScriptedEngine(
      [
        { kind: 'delta', text: 'Hel', tokenIds: [] },
        { kind: 'delta', text: 'lo', tokenIds: [] },
        { kind: 'delta', text: '!', tokenIds: [] },
        { kind: 'done', finishReason: 'length', promptTokens: 10, completionTokens: 3, ttft: 0 },
      ],
      40,
    );
    const texts: string[] = [];
    const req = await buildRequest({ history: [{ id: 'u', role: 'user', text: 'hi' }], settings: { systemPrompt: '', temperature: 0, maxTokens: 3 } });
    const { text, meta } = await runTurn({ engine, engineLabel: 'Test', request: req, onText: (t) => texts.push(t) });
    expect(texts).toEqual(['Hel', 'Hello', 'Hello!']);
    expect(text).toBe('Hello!');
    expect(meta).toMatchObject({ engine: 'Test', completionTokens: 3, finishReason: 'length' });
    expect(meta.ttftS).toBeGreaterThan(0.03);
    // 2 tokens after the first over ~2–3 delays of 40 ms: between a few and 50 tokens/s.
    expect(meta.tokensPerS).toBeGreaterThan(5);
    expect(meta.tokensPerS).toBeLessThan(50);
  });
});

describe('titleFrom', () => {
  it('takes the first line, shortened; attachments name an empty message', () => {
    expect(titleFrom('  Describe this image.\nmore')).toBe('Describe this image.');
    expect(titleFrom('x'.repeat(60))).toHaveLength(48);
    expect(titleFrom('', [{ kind: 'video', name: 'v', mimeType: 'video/mp4', data: new Blob([]) }])).toBe('Video');
  });
});
