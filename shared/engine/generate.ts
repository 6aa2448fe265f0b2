/**
 * Single-sequence generation on one device: chunked prefill of a prepared prompt, then decode
 * with the paged KV cache, greedy (argmax on the GPU) or sampled (temperature/top-k/top-p on the
 * GPU with a seeded RNG). Only the sampled id (4 bytes) is read back per step.
 *
 * Optional, as vLLM does them: repetition / frequency / presence penalties applied to the logits
 * on the GPU before argmax or sampling, and stop strings matched on the decoded text.
 */
import type { Tensor } from '../gpu/tensor.ts';
import { gather } from '../kernels/embedding/index.ts';
import { argmax, checkSampled, SampleRng, SamplingError, topKTopP } from '../kernels/sample/index.ts';
import { NO_PENALTIES, type PenaltySettings, penaltiesOff } from '../kernels/sample/penalties.ts';
import type { PagedKvCache } from '../model/qwen3-vl/kv-cache.ts';
import { deepstackForChunk, type PreparedPrompt, type Qwen3VLModel } from '../model/qwen3-vl/model.ts';
import type { TraceFn } from '../model/qwen3-vl/trace.ts';
import { applyPenalties, PenaltyState } from './penalties.ts';
import { StopMatcher } from './stop.ts';

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
  /**
   * vLLM penalties, applied before sampling (and before argmax when greedy): repetition (> 0,
   * 1 = off) over prompt ∪ output tokens, then frequency and presence (0 = off) over the output.
   */
  penalties?: Partial<PenaltySettings>;
  /** The prompt's token ids: the repetition penalty's prompt set (required when it is on). */
  promptIds?: ArrayLike<number>;
  /** Stop strings, matched on the text the decoder produces; the result then carries `text`. */
  stop?: StopOptions;
  /** Receives the logits tensor of each step (prefill's last row, then each decode step), before penalties. */
  onLogits?: (logits: Tensor, step: number) => void;
  trace?: TraceFn;
  /** Sequence id in the KV cache (released at the end). */
  seq?: number;
  signal?: AbortSignal;
}

export interface StopOptions {
  /** Generation ends (finishReason 'stop') as soon as any of these appears; it is not in `text`. */
  strings: readonly string[];
  /** The text delta of one id (e.g. `StreamingDecoder.push`). */
  decoder: (id: number) => string;
  /** Pending text at the end of the stream (e.g. `StreamingDecoder.flush`). */
  flush?: () => string;
  /** Receives the text as it becomes safe to show (never part of a stop string). */
  onText?: (text: string) => void;
}

export interface GenerateResult {
  /** Every generated id, including the eos id or the id that completed a stop string. */
  tokens: number[];
  finishReason: 'stop' | 'length' | 'abort';
  promptTokens: number;
  /** The decoded output up to (not including) the stop string; set when `stop` was given. */
  text?: string;
  /** The stop string that ended generation. */
  stopString?: string;
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
  const settings: PenaltySettings = { ...NO_PENALTIES, ...o.penalties };
  let penaltyState: PenaltyState | null = null;
  if (!penaltiesOff(settings)) {
    if (settings.repetition !== 1 && !o.promptIds) {
      throw new SamplingError('the repetition penalty needs the prompt ids (promptIds)');
    }
    penaltyState = new PenaltyState();
    penaltyState.start(0, o.promptIds ?? [], settings);
  }
  const matcher = o.stop ? new StopMatcher(o.stop.strings) : null;
  let text = '';
  let stopString: string | undefined;
  /** Feeds a text delta to the stop matcher; true when a stop string completed. */
  const feedText = (delta: string): boolean => {
    const r = matcher!.push(delta);
    if (r.text) {
      text += r.text;
      o.stop!.onText?.(r.text);
    }
    if (r.stop === undefined) return false;
    stopString = r.stop;
    return true;
  };

  const sample = async (logits: Tensor, step: number): Promise<number> => {
    o.onLogits?.(logits, step);
    if (penaltyState) applyPenalties(ctx, logits, penaltyState, [0]);
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
      penaltyState?.push(0, next);
      const stopHit = matcher !== null && feedText(o.stop!.decoder(next));
      if (o.onToken?.(next) === false || o.signal?.aborted) {
        finishReason = 'abort';
        break;
      }
      if (stopHit) {
        finishReason = 'stop';
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
    if (matcher && stopString === undefined) {
      // The decoder's pending bytes may still complete a stop string; then release the held tail.
      if (feedText(o.stop!.flush?.() ?? '')) finishReason = 'stop';
      else {
        const tail = matcher.flush();
        text += tail;
        if (tail) o.stop!.onText?.(tail);
      }
    }
  } finally {
    out.release();
    kv.blocks.release(seq);
  }
  if (!matcher) return { tokens, finishReason, promptTokens: S };
  return { tokens, finishReason, promptTokens: S, text, ...(stopString === undefined ? {} : { stopString }) };
}
