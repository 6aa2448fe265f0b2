/**
 * `vlmesh chat --model M [--image FILE]... [--video FILE] [--max-tokens N] [--temperature T] "prompt"`:
 * one turn, streamed to stdout as it is generated.
 */
import { readFile } from 'node:fs/promises';
import type { ImageInput } from '../../shared/engine/engine.ts';
import { generate } from '../../shared/engine/generate.ts';
import { prepareChat } from '../../shared/engine/prompt.ts';
import type { ChatContentPart, ChatMessage } from '../../shared/text/chat-template.ts';
import { createDawnContext } from '../gpu/dawn.ts';
import { nodeImageDecoders } from '../io/image-decoders.ts';
import { openModelDir } from '../io/model-dir.ts';
import { readVideoFrames } from '../io/video-ffmpeg.ts';
import { dtypeArg, parse, UsageError } from './args.ts';
import { progressReporter, resolveModelPath } from './pull.ts';

function numberArg(name: string, v: string | undefined, fallback: number, check: (n: number) => boolean): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isFinite(n) || !check(n)) throw new UsageError(`--${name}: invalid value "${v}"`);
  return n;
}

export async function chatCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(
    argv,
    {
      model: { type: 'string' },
      image: { type: 'string', multiple: true },
      video: { type: 'string' },
      system: { type: 'string' },
      'max-tokens': { type: 'string' },
      temperature: { type: 'string' },
      'top-p': { type: 'string' },
      'top-k': { type: 'string' },
      seed: { type: 'string' },
      dtype: { type: 'string' },
    },
    true,
  );
  if (!values.model) throw new UsageError('chat needs --model DIR');
  if (positionals.length !== 1) throw new UsageError('chat takes exactly one prompt argument (quote it)');
  const maxTokens = numberArg('max-tokens', values['max-tokens'], 256, (n) => Number.isInteger(n) && n > 0);
  const temperature = numberArg('temperature', values.temperature, 0, (n) => n >= 0);
  const topP = numberArg('top-p', values['top-p'], 1, (n) => n > 0 && n <= 1);
  const topK = numberArg('top-k', values['top-k'], 0, (n) => Number.isInteger(n) && n >= 0);
  const seed = numberArg('seed', values.seed, 0, (n) => Number.isSafeInteger(n) && n >= 0);

  const dtype = dtypeArg(values.dtype);
  const ctx = await createDawnContext({ label: 'vlmesh-chat' });
  try {
    const progress = (done: number, total: number) => {
      if (process.stderr.isTTY) process.stderr.write(`\rloading weights ${done}/${total}`);
    };
    const dir = await resolveModelPath(values.model, { onProgress: progressReporter(process.stderr) });
    const m = await openModelDir(ctx, dir, { onProgress: progress, dtype });
    if (process.stderr.isTTY) process.stderr.write('\r\x1b[K');
    if (!m.tokenizer || !m.template) throw new UsageError(`${values.model} has no tokenizer.json or chat template: it cannot chat`);
    const images: ImageInput[] = [];
    for (const file of values.image ?? []) images.push({ bytes: new Uint8Array(await readFile(file)) });
    const content: ChatContentPart[] = [
      ...images.map(() => ({ type: 'image' }) as ChatContentPart),
      ...(values.video ? [{ type: 'video' } as ChatContentPart] : []),
      { type: 'text', text: positionals[0] },
    ];
    const messages: ChatMessage[] = [];
    if (values.system) messages.push({ role: 'system', content: values.system });
    messages.push({ role: 'user', content });
    const chatModel = { ...m, tokenizer: m.tokenizer, template: m.template };
    // Video files: ffmpeg decodes the frames the video processor samples.
    const v = values.video ? await readVideoFrames(values.video, m.videoSampling) : null;
    const { prompt, inputIds } = await prepareChat(chatModel, messages, images, {
      decoders: nodeImageDecoders(),
      video: v ? { ...v, processor: m.videoProcessor } : undefined,
    });
    const kv = m.model.createKvCache({ numBlocks: Math.ceil((inputIds.length + maxTokens) / 16) + 1, blockSize: 16 });
    const decoder = m.tokenizer.streamingDecoder({ skipSpecialTokens: true });
    const t0 = performance.now();
    let first = 0;
    const result = await generate(m.model, kv, prompt, {
      maxNewTokens: maxTokens,
      sampling: temperature > 0 ? { temperature, topP, topK, seed } : undefined,
      eosTokenIds: m.generation?.eosTokenIds ?? [],
      onToken: (id) => {
        first ||= performance.now();
        process.stdout.write(decoder.push(id));
        return true;
      },
    });
    process.stdout.write(`${decoder.flush()}\n`);
    const t1 = performance.now();
    const n = result.tokens.length;
    process.stderr.write(
      `[${result.promptTokens} prompt tokens, ${n} generated, ${result.finishReason}; ` +
        `TTFT ${((first - t0) / 1000).toFixed(2)} s, ${n > 1 ? ((n - 1) / ((t1 - first) / 1000)).toFixed(2) : '-'} tokens/s]\n`,
    );
    prompt.release();
    kv.release();
    m.release();
    return 0;
  } finally {
    ctx.destroy();
  }
}
