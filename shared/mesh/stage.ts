/**
 * A mesh stage: a peer's slice of the decoder.
 *
 * `StageRunner` holds a `Qwen3VLModel` restricted to a layer range and its own paged KV cache,
 * and runs the chunks it receives (prefill chunks and decode tokens) for each sequence, returning
 * the hidden states after its last layer. Chunks of a sequence must arrive in order; the same
 * chunk sent again (a coordinator retrying after a replan) returns the kept output instead of
 * appending to the cache twice. Optionally it keeps every input it received, per sequence, so
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
import { Qwen3VLModel } from '../model/qwen3-vl/model.ts';
import type { GpuWeights } from '../model/qwen3-vl/weights.gpu.ts';
import type { LayerRange } from './placement.ts';
import type { Transport } from './transport.ts';
import { decodeMessage, encodeMessage, type MeshMessage, type TensorMessage, type WireDType, WireError } from './wire.ts';

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
  kept: TensorMessage[];
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
  keptInputs(seq: number): readonly TensorMessage[] {
    return this.seqs.get(seq)?.kept ?? [];
  }

  /**
   * Runs this stage's layers over one chunk: `[rows, hidden]` in, `[rows, hidden]` out.
   *
   * @throws StageOrderError when the chunk does not start where the sequence's cache ends.
   */
  async forward(m: TensorMessage): Promise<Float32Array> {
    const Hd = this.config.text.hiddenSize;
    if (m.cols !== Hd) throw new WireError('WIRE_SHAPE', `hidden size ${m.cols}; this model has ${Hd}`);
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
    this.kv.blocks.grow(m.seq, m.rows);
    const hidden = this.ctx.upload(m.hidden, [m.rows, Hd], 'f32', 'stage.hidden');
    try {
      this.model.forward(this.kv, { hidden, seq: m.seq, start: m.start, positions: m.positions });
      const out = await this.ctx.readF32(hidden);
      s.last = { chunk: m.chunk, start: m.start, rows: m.rows, out };
      if (this.o.keepInputs) s.kept.push(m);
      return out;
    } finally {
      hidden.release();
    }
  }

  /** Forgets a sequence (its blocks go back to the cache). */
  release(seq: number): void {
    if (this.kv.blocks.has(seq)) this.kv.blocks.release(seq);
    this.seqs.delete(seq);
  }

  /**
   * A runner for `range` (same start: the kept inputs are still this stage's inputs) whose cache
   * is rebuilt by replaying every kept input; this runner is disposed.
   */
  async rebuild(range: LayerRange, weights: GpuWeights): Promise<StageRunner> {
    if (range[0] !== this.range[0]) throw new StageOrderError(`a stage starting at ${this.range[0]} cannot rebuild from its own inputs at ${range[0]}`);
    const next = new StageRunner(this.ctx, this.config, weights, range, this.o);
    for (const [, s] of this.seqs) for (const m of s.kept) await next.forward(m);
    this.dispose();
    return next;
  }

  dispose(): void {
    this.kv.release();
    this.seqs.clear();
  }
}

export interface StagePeerOptions {
  ctx: GpuContext;
  config: Qwen3VLConfig;
  /** The weights of a layer range (loaded on demand; in one process, shared). */
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
    if (m.kind === 'ping') {
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
      case 'forward': {
        if (!this.runner) throw new StageOrderError('forward before any layer range was assigned');
        const out = await this.runner.forward(m);
        this.reply({ ...m, kind: 'result', hidden: out, dtype: this.o.wireDtype ?? 'f16' });
        return;
      }
      case 'release':
        this.runner?.release(m.seq);
        return;
      default:
        return;
    }
  }
}
