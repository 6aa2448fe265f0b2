/**
 * Single-sequence generation on one device: chunked prefill of a prepared prompt, then decode
 * with the paged KV cache, greedy (argmax on the GPU) or sampled (temperature/top-k/top-p on the
 * GPU with a seeded RNG). Only the sampled id (4 bytes) is read back per step.
 */
import type { Tensor } from '../gpu/tensor.ts';
import { gather } from '../kernels/embedding/index.ts';
import { argmax, checkSampled, SampleRng, topKTopP } from '../kernels/sample/index.ts';
import type { PagedKvCache } from '../model/qwen3-vl/kv-cache.ts';
import { deepstackForChunk, type PreparedPrompt, type Qwen3VLModel } from '../model/qwen3-vl/model.ts';
import type { TraceFn } from '../model/qwen3-vl/trace.ts';

export interface GenerateOptions {
  maxNewTokens: number;
  /** Prefill chunk length (tokens per forward). */
  chunkSize?: number;
  /** Omit (or temperature 0) for greedy decoding. */
  sampling?: { temperature: number; topK?: number; topP?: number; seed?: number };
  /** Stop after any of these ids (it is included in the output). */
  eosTokenIds?: readonly number[];
  /** Called with each new id as soon as it is known; return false to stop. */
  onToken?: (id: number) => boolean | undefined;
  /** Receives the logits tensor of each step (prefill's last row, then each decode step). */
  onLogits?: (logits: Tensor, step: number) => void;
  trace?: TraceFn;
  /** Sequence id in the KV cache (released at the end). */
  seq?: number;
  signal?: AbortSignal;
}

export interface GenerateResult {
  tokens: number[];
  finishReason: 'stop' | 'length' | 'abort';
  promptTokens: number;
}

export async function generate(
  model: Qwen3VLModel,
  kv: PagedKvCache,
  prompt: PreparedPrompt,
  o: GenerateOptions,
): Promise<GenerateResult> {
  const { ctx, config } = model;
  const Hd = config.text.hiddenSize;
  const S = prompt.embeds.shape[0];
  const seq = o.seq ?? 0;
  const chunk = Math.max(1, o.chunkSize ?? 256);
  const greedy = !o.sampling || o.sampling.temperature === 0;
  const rng = greedy ? null : new SampleRng(o.sampling?.seed ?? 0);
  const eos = new Set(o.eosTokenIds ?? []);
  const out = ctx.empty([1], 'u32', 'sampled');
  const tokens: number[] = [];
  let finishReason: GenerateResult['finishReason'] = 'length';

  const sample = async (logits: Tensor, step: number): Promise<number> => {
    o.onLogits?.(logits, step);
    if (greedy) {
      ctx.run(argmax(ctx, { logits, out }));
      return (await ctx.read(out))[0];
    }
    const s = o.sampling!;
    const u = ctx.upload(rng!.uniforms(1), [1], 'f32', 'sample.u');
    ctx.run(topKTopP(ctx, { logits, uniforms: u, out, temperature: s.temperature, topK: s.topK ?? 0, topP: s.topP ?? 1 }));
    const id = (await ctx.read(out))[0];
    u.release();
    checkSampled(new Uint32Array([id]));
    return id;
  };

  try {
    // Prefill in chunks; only the last chunk's last row needs logits.
    let next = -1;
    for (let start = 0; start < S; start += chunk) {
      const T = Math.min(chunk, S - start);
      kv.blocks.grow(seq, T);
      const hidden = ctx.empty([T, Hd], 'f32', 'prefill.hidden');
      ctx.copy(prompt.embeds.view(start * Hd, T * Hd), hidden);
      model.forward(kv, {
        hidden,
        seq,
        start,
        positions: [0, 1, 2].map((a) => prompt.positions[a].subarray(start, start + T)) as [Int32Array, Int32Array, Int32Array],
        deepstack: deepstackForChunk(prompt, start, T),
        trace: o.trace,
      });
      if (start + T === S) {
        const logits = model.logits(hidden, T - 1, 1, o.trace);
        next = await sample(logits, 0);
        logits.release();
      }
      hidden.release();
    }
    const ids = ctx.empty([1], 'u32', 'decode.id');
    const hidden = ctx.empty([1, Hd], 'f32', 'decode.hidden');
    const embed = model.weights.get('model.language_model.embed_tokens.weight');
    for (let step = 0; ; step++) {
      tokens.push(next);
      if (o.onToken?.(next) === false || o.signal?.aborted) {
        finishReason = 'abort';
        break;
      }
      if (eos.has(next)) {
        finishReason = 'stop';
        break;
      }
      if (tokens.length >= o.maxNewTokens) break;
      // Decode: absolute index i = S + step; position i + rope_delta on all three axes.
      const i = S + step;
      const p = i + prompt.ropeDelta;
      ctx.write(ids, new Uint32Array([next]));
      gather(ctx, { ids, table: embed, out: hidden, hostIds: [next] });
      kv.blocks.grow(seq, 1);
      const pos = new Int32Array([p]);
      model.forward(kv, { hidden, seq, start: i, positions: [pos, pos, pos] });
      const logits = model.logits(hidden, 0, 1);
      next = await sample(logits, step + 1);
      logits.release();
    }
    ids.release();
    hidden.release();
  } finally {
    out.release();
    kv.blocks.release(seq);
  }
  return { tokens, finishReason, promptTokens: S };
}
