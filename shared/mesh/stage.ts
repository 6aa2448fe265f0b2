/**
 * A mesh stage: a peer's slice of the decoder.
 *
 * `StageRunner` holds a `Qwen3VLModel` restricted to a layer range and its own paged KV cache,
 * and runs the chunks it receives (prefill chunks and decode tokens) for each sequence, returning
 * the hidden states after its last layer. A stage whose range starts at layer 0 is the head (behind
 * a coordinator that holds no layer): it also holds the embeddings and the vision tower, takes a
 * sequence's `prompt` (token ids and pixels: it runs the vision tower and scatters the features
 * itself) and then `embed` chunks of token ids instead of hidden states.
 *
 * Chunks of a sequence must arrive in order; the same chunk sent again (a coordinator retrying
 * after a replan) returns the kept output instead of appending to the cache twice. Optionally it keeps every input it received, per sequence, so
 * its cache can be rebuilt by replaying them (`rebuild`).
 *
 * `StagePeer` serves a runner over a `Transport`: it answers pings at once (heartbeats are not
 * queued behind GPU work), runs forwards one at a time, takes `assign` (a new layer range: the
 * cache starts empty and the coordinator replays), and answers a malformed frame with an error.
 */
import { VlmeshError } from '../errors.ts';
import type { GpuContext } from '../gpu/context.ts';
import type { Qwen3VLConfig } from '../model/qwen3-vl/config.ts';
import type { PagedKvCache } from '../model/qwen3-vl/kv-cache.ts';
import { gather } from '../kernels/embedding/index.ts';
import { deepstackForChunk, type PreparedPrompt, Qwen3VLModel } from '../model/qwen3-vl/model.ts';
import type { GpuWeights } from '../model/qwen3-vl/weights.gpu.ts';
import type { LayerRange } from './placement.ts';
import type { Transport } from './transport.ts';
import {
  decodeMessage,
  type EmbedMessage,
  encodeMessage,
  type MeshMessage,
  type PromptMessage,
  type TensorMessage,
  type WireDType,
  WireError,
} from './wire.ts';

/** What a stage runs: hidden states from the previous stage, or (the head) token ids. */
export type StageInput = TensorMessage | EmbedMessage;

/** A chunk that does not continue its sequence where the stage's cache ends. */
export class StageOrderError extends VlmeshError {
  constructor(message: string) {
    super('MESH_STAGE_ORDER', message);
  }
}

export interface StageRunnerOptions {
  /** KV cache blocks (of `blockSize` tokens) for all sequences of this stage. */
  numBlocks: number;
  blockSize?: number;
  /** Keep every received input so `rebuild` can replay it (costs hidden × 4 bytes a token). */
  keepInputs?: boolean;
}

interface SeqState {
  /** Last chunk run and its output (returned again when the chunk is re-sent). */
  last: { chunk: number; start: number; rows: number; out: Float32Array } | null;
  kept: StageInput[];
  /** Head stage: the prompt's embeddings (vision features scattered in) until its last chunk ran. */
  prompt?: { prepared: PreparedPrompt; length: number } | null;
}

/** Runs one layer range of the decoder over the chunks of many sequences. */
export class StageRunner {
  readonly model: Qwen3VLModel;
  private kv: PagedKvCache;
  private readonly seqs = new Map<number, SeqState>();

  constructor(
    readonly ctx: GpuContext,
    readonly config: Qwen3VLConfig,
    weights: GpuWeights,
    readonly range: LayerRange,
    private readonly o: StageRunnerOptions,
  ) {
    this.model = new Qwen3VLModel(ctx, config, weights, range);
    this.kv = this.model.createKvCache({ numBlocks: o.numBlocks, blockSize: o.blockSize });
  }

  /** Tokens of `seq` in this stage's cache. */
  length(seq: number): number {
    return this.kv.blocks.has(seq) ? this.kv.blocks.length(seq) : 0;
  }

  /** Sequences with state on this stage. */
  sequences(): number[] {
    return [...this.seqs.keys()];
  }

  /** The inputs kept for `seq` (empty unless `keepInputs`). */
  keptInputs(seq: number): readonly StageInput[] {
    return this.seqs.get(seq)?.kept ?? [];
  }

  /** True when this stage starts at layer 0: it embeds tokens and runs the vision tower itself. */
  get isHead(): boolean {
    return this.range[0] === 0;
  }

  /**
   * Head stage: takes a sequence's prompt and runs the vision tower on its pixels (the features
   * stay on this device). A prompt sent again before the sequence's first chunk replaces it; one
   * sent after is the same prompt (a coordinator retrying) and is ignored.
   *
   * @throws StageOrderError on a stage that does not start at layer 0.
   */
  setPrompt(m: PromptMessage): void {
    if (!this.isHead) throw new StageOrderError(`a prompt for sequence ${m.seq} reached the stage [${this.range[0]}, ${this.range[1]}), which does not start at layer 0`);
    const V = this.config.text.vocabSize;
    const bad = m.inputIds.find((id) => id >= V);
    if (bad !== undefined) throw new WireError('WIRE_SHAPE', `token id ${bad} in the prompt of sequence ${m.seq} is outside the vocabulary of ${V}`);
    let s = this.seqs.get(m.seq);
    if (s && this.length(m.seq) > 0) return;
    if (!s) {
      s = { last: null, kept: [] };
      this.seqs.set(m.seq, s);
    }
    s.prompt?.prepared.release();
    const prepared = this.model.prepare(m.inputIds, {
      ...(m.images ? { images: m.images } : {}),
      ...(m.videos ? { videos: m.videos } : {}),
    });
    s.prompt = { prepared, length: m.inputIds.length };
  }

  /**
   * Runs this stage's layers over one chunk: `[rows, hidden]` in (or, on the head, `rows` token
   * ids), `[rows, hidden]` out.
   *
   * @throws StageOrderError when the chunk does not start where the sequence's cache ends, or a
   *   head chunk comes without its sequence's prompt.
   */
  async forward(m: StageInput): Promise<Float32Array> {
    const Hd = this.config.text.hiddenSize;
    if (m.kind === 'embed' && !this.isHead) throw new StageOrderError(`token ids reached the stage [${this.range[0]}, ${this.range[1]}), which does not start at layer 0`);
    if (m.kind !== 'embed' && this.isHead) throw new StageOrderError('the head stage takes token ids (embed), not hidden states');
    if (m.kind !== 'embed' && m.cols !== Hd) throw new WireError('WIRE_SHAPE', `hidden size ${m.cols}; this model has ${Hd}`);
    let s = this.seqs.get(m.seq);
    const have = this.length(m.seq);
    if (s?.last && s.last.chunk === m.chunk && s.last.start === m.start && s.last.rows === m.rows && have === m.start + m.rows) {
      return s.last.out;
    }
    if (m.start !== have) {
      throw new StageOrderError(`sequence ${m.seq}: chunk ${m.chunk} starts at ${m.start} but the stage holds ${have} tokens`);
    }
    if (!s) {
      s = { last: null, kept: [] };
      this.seqs.set(m.seq, s);
    }
    const hidden = m.kind === 'embed' ? this.embed(m, s) : this.ctx.upload(m.hidden, [m.rows, Hd], 'f32', 'stage.hidden');
    try {
      const prompt = m.kind === 'embed' && m.start < (s.prompt?.length ?? 0) ? s.prompt!.prepared : null;
      this.kv.blocks.grow(m.seq, m.rows);
      this.model.forward(this.kv, {
        hidden,
        seq: m.seq,
        start: m.start,
        positions: m.positions,
        deepstack: prompt ? deepstackForChunk(prompt, m.start, m.rows) : undefined,
      });
      const out = await this.ctx.readF32(hidden);
      s.last = { chunk: m.chunk, start: m.start, rows: m.rows, out };
      if (this.o.keepInputs) s.kept.push(m);
      // The prompt's last chunk ran: its embeddings and DeepStack features are no longer needed.
      if (prompt && m.start + m.rows >= s.prompt!.length) {
        s.prompt!.prepared.release();
        s.prompt = null;
      }
      return out;
    } finally {
      hidden.release();
    }
  }

  /** Head stage: the chunk's input rows — the prompt's embeddings, or the embedded token ids. */
  private embed(m: EmbedMessage, s: SeqState) {
    const { ctx, config } = this;
    const Hd = config.text.hiddenSize;
    const hidden = ctx.empty([m.rows, Hd], 'f32', 'stage.embed');
    if (s.prompt && m.start < s.prompt.length) {
      if (m.start + m.rows > s.prompt.length) {
        hidden.release();
        throw new StageOrderError(`sequence ${m.seq}: chunk ${m.chunk} [${m.start}, ${m.start + m.rows}) runs past its prompt of ${s.prompt.length} tokens`);
      }
      ctx.copy(s.prompt.prepared.embeds.view(m.start * Hd, m.rows * Hd), hidden);
      return hidden;
    }
    if (m.start === 0) {
      hidden.release();
      throw new StageOrderError(`sequence ${m.seq}: the head stage has no prompt for it`);
    }
    const V = config.text.vocabSize;
    const bad = m.ids.find((id) => id >= V);
    if (bad !== undefined) {
      hidden.release();
      throw new WireError('WIRE_SHAPE', `token id ${bad} of sequence ${m.seq} is outside the vocabulary of ${V}`);
    }
    const ids = ctx.upload(m.ids, [m.rows], 'u32', 'stage.ids');
    gather(ctx, { ids, table: this.model.weights.get('model.language_model.embed_tokens.weight'), out: hidden, hostIds: m.ids });
    ids.release();
    return hidden;
  }

  /** Forgets a sequence (its blocks go back to the cache). */
  release(seq: number): void {
    if (this.kv.blocks.has(seq)) this.kv.blocks.release(seq);
    this.seqs.get(seq)?.prompt?.prepared.release();
    this.seqs.delete(seq);
  }

  /**
   * A runner for `range` (same start: the kept inputs are still this stage's inputs) whose cache
   * is rebuilt by replaying every kept input; this runner is disposed.
   */
  async rebuild(range: LayerRange, weights: GpuWeights): Promise<StageRunner> {
    if (range[0] !== this.range[0]) throw new StageOrderError(`a stage starting at ${this.range[0]} cannot rebuild from its own inputs at ${range[0]}`);
    if (this.isHead) throw new StageOrderError('the head stage is rebuilt by the coordinator (prompt and chunks replayed), not from its own inputs');
    const next = new StageRunner(this.ctx, this.config, weights, range, this.o);
    for (const [, s] of this.seqs) for (const m of s.kept) await next.forward(m);
    this.dispose();
    return next;
  }

  dispose(): void {
    this.kv.release();
    for (const s of this.seqs.values()) s.prompt?.prepared.release();
    this.seqs.clear();
  }
}

export interface StagePeerOptions {
  ctx: GpuContext;
  config: Qwen3VLConfig;
  /**
   * The weights of a layer range (loaded on demand; in one process, shared). A range that starts
   * at layer 0 makes this peer the head: its weights must include the embeddings and the vision
   * tower.
   */
  weightsFor: (range: LayerRange) => Promise<GpuWeights>;
  numBlocks: number;
  blockSize?: number;
  /** Dtype of the hidden states this peer sends back (default f16). */
  wireDtype?: WireDType;
}

/** Serves a `StageRunner` over a transport until the link closes. */
export class StagePeer {
  private runner: StageRunner | null = null;
  private queue: Promise<void> = Promise.resolve();

  constructor(
    private readonly transport: Transport,
    private readonly o: StagePeerOptions,
  ) {
    transport.onMessage((frame) => this.onFrame(frame));
    transport.onClose(() => {
      void this.queue.then(() => {
        this.runner?.dispose();
        this.runner = null;
      });
    });
  }

  /** The layer range served now (null before the first `assign`). */
  get range(): LayerRange | null {
    return this.runner?.range ?? null;
  }

  private reply(m: MeshMessage): void {
    this.transport.send(encodeMessage(m));
  }

  private onFrame(frame: Uint8Array): void {
    let m: MeshMessage;
    try {
      m = decodeMessage(frame, { cols: this.o.config.text.hiddenSize });
    } catch (e) {
      const err = e as VlmeshError;
      this.reply({ kind: 'error', code: err.code ?? 'WIRE', message: err.message });
      return;
    }
    if (m.kind === 'ping' || m.kind === 'probe') {
      this.reply({ kind: 'pong', nonce: m.nonce });
      return;
    }
    // Everything else runs in arrival order.
    this.queue = this.queue.then(() => this.handle(m)).catch((e: unknown) => {
      const err = e as VlmeshError;
      this.reply({ kind: 'error', code: err.code ?? 'STAGE', message: err.message ?? String(e) });
    });
  }

  private async handle(m: MeshMessage): Promise<void> {
    switch (m.kind) {
      case 'assign': {
        this.runner?.dispose();
        this.runner = null;
        const weights = await this.o.weightsFor(m.range);
        this.runner = new StageRunner(this.o.ctx, this.o.config, weights, m.range, { numBlocks: this.o.numBlocks, blockSize: this.o.blockSize });
        this.reply(m); // the echo acknowledges the assignment
        return;
      }
      case 'forward':
      case 'embed': {
        if (!this.runner) throw new StageOrderError(`${m.kind} before any layer range was assigned`);
        const out = await this.runner.forward(m);
        const { seq, chunk, start, positions, rows } = m;
        this.reply({ kind: 'result', seq, chunk, start, positions, rows, cols: this.o.config.text.hiddenSize, hidden: out, dtype: this.o.wireDtype ?? 'f16', ...(m.replay ? { replay: true } : {}) });
        return;
      }
      case 'prompt':
        if (!this.runner) throw new StageOrderError('prompt before any layer range was assigned');
        this.runner.setPrompt(m);
        return;
      case 'release':
        this.runner?.release(m.seq);
        return;
      default:
        return;
    }
  }
}
