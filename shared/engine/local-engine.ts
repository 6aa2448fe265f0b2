/**
 * `LocalEngine`: the `Engine` over a model loaded in this thread, with continuous batching.
 *
 * All sequences share one paged KV cache. One scheduler loop runs while there is work; each
 * iteration is one "step":
 *
 *   ┌─ reap: aborted / hung-up requests end and free their blocks at once
 *   ├─ admit: the best waiting requests (priority class + aging) are planned on the host
 *   │         (template, tokens, image preprocessing), their images go through the vision
 *   │         tower TOGETHER (grouped by resolution; vision-cache hits skip it), their prompt
 *   │         adopts cached prefix blocks, and the rest of the prompt gets blocks
 *   ├─ prefill: ONE chunk (≤ chunkSize tokens) of the most urgent sequence still prefilling
 *   └─ decode: ONE batched forward for every sequence that is generating (a row each),
 *              logits → penalties → argmax / top-k-top-p on the GPU → one readback of B ids
 *
 * so long prompts are chunked and interleaved with the decode steps of the running sequences
 * instead of stalling them. When a decode step needs a block and none is free, the least urgent
 * running sequence is preempted (blocks freed, recomputed later from its prompt and the tokens it
 * had generated). Priorities: `gui` > `interactive` > `batch`; the score is
 * `class rank × agingMs + arrival time`, so a batch request waiting longer than 2 × agingMs goes
 * before a fresh GUI one (no starvation).
 *
 * Batching never changes a sequence's tokens: decode projections run in row groups of the shape a
 * lone sequence uses (`textLayersDecodeBatch`), and a sequence's prefill chunks are the same as
 * when it runs alone (unless it starts from cached prefix blocks).
 *
 * Prefix caching: every full block of a sequence (prompt and generated tokens) is committed under
 * the hash of its tokens and everything before it, image pads keyed by the image's content hash;
 * a new request adopts the leading blocks it shares with earlier ones. A `sessionId` keeps its
 * conversation's blocks pinned for `sessionTtlMs` after each turn (pins are dropped, oldest first,
 * when the cache runs out of blocks).
 */
import { VlmeshError } from '../errors.ts';
import type { Tensor } from '../gpu/tensor.ts';
import { gather } from '../kernels/embedding/index.ts';
import { argmax, checkSampled, SampleRng, topKTopP } from '../kernels/sample/index.ts';
import { penaltiesOff } from '../kernels/sample/penalties.ts';
import type { PagedKvCache } from '../model/qwen3-vl/kv-cache.ts';
import { deepstackForChunk, type PreparedPrompt } from '../model/qwen3-vl/model.ts';
import type { Grid, VisionOutput } from '../model/qwen3-vl/vision.ts';
import type { Engine, EngineCounters, EngineStats, GenerationEvent, GenerationRequest, PriorityClass } from './engine.ts';
import { blockHash, KvCacheFullError } from './kv-blocks.ts';
import { applyPenalties, PenaltyState } from './penalties.ts';
import { type ChatModel, ContextLengthError, type EnginePlanSettings, type PlannedChat, planChat, requestPlanOptions } from './prompt.ts';
import { DeltaStream } from './stop.ts';
import type { VisionCache, VisionEmbedding } from './vision-cache.ts';
import { visionCacheKey } from './vision-cache.ts';

/** The engine was used after `close()`. */
export class EngineClosedError extends VlmeshError {
  constructor() {
    super('ENGINE_CLOSED', 'the engine is closed and takes no more requests');
  }
}

/** Also: image decoders, the image limit, the context and video preprocessing (`EnginePlanSettings`). */
export interface LocalEngineOptions extends EnginePlanSettings {
  /** The id reported by /v1/models and checked against a request's `model`. */
  modelId: string;
  /** The loaded model, tokenizer, chat template and image processor settings. */
  model: ChatModel;
  /** Generation stops after any of these ids (the model's `eos_token_id`). */
  eosTokenIds?: readonly number[];
  /** KV cache block size in tokens (default 16). */
  blockSize?: number;
  /** Prefill chunk length in tokens (default 256). */
  chunkSize?: number;
  /** Most sequences running (prefilling or decoding) at once; also the largest decode batch. Default 16. */
  maxNumSeqs?: number;
  /**
   * KV cache size in bytes (default 1 GiB, and at most maxNumSeqs × min(maxModelLen, 8192) tokens
   * unless given; never more than one storage binding per layer).
   */
  kvCacheBytes?: number;
  /** Reuse cached full blocks of shared prefixes (default true). */
  prefixCaching?: boolean;
  /** Vision-tower outputs by image content (in-process LRU or Redis); absent = no cache. */
  visionCache?: VisionCache;
  /** How long a `sessionId`'s blocks stay pinned after its last turn (default 5 min). */
  sessionTtlMs?: number;
  /** Milliseconds of waiting worth one priority class (default 10 s). */
  agingMs?: number;
}

/** An unbounded single-consumer queue of events that ends, or fails with an error. */
class EventChannel<T> implements AsyncIterable<T> {
  private readonly items: T[] = [];
  private wake: (() => void) | null = null;
  private ended = false;
  private error: unknown = null;

  push(item: T): void {
    this.items.push(item);
    this.notify();
  }
  end(): void {
    this.ended = true;
    this.notify();
  }
  fail(error: unknown): void {
    this.error = error ?? new Error('engine failure');
    this.end();
  }
  get isEnded(): boolean {
    return this.ended;
  }
  private notify(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }
  async *[Symbol.asyncIterator](): AsyncIterator<T> {
    for (;;) {
      if (this.items.length) {
        yield this.items.shift() as T;
        continue;
      }
      if (this.ended) {
        if (this.error) throw this.error;
        return;
      }
      await new Promise<void>((resolve) => {
        this.wake = resolve;
      });
    }
  }
}

const CLASS_RANK: Record<PriorityClass, number> = { gui: 0, interactive: 1, batch: 2 };

/** One request's life in the scheduler. */
interface Seq {
  /** Sequence id in the KV block manager. */
  id: number;
  req: GenerationRequest;
  channel: EventChannel<GenerationEvent>;
  signal: AbortSignal;
  /** Lower runs first: class rank × agingMs + arrival (ms). */
  score: number;
  submitted: number;
  plan: PlannedChat | null;
  /** Content hash of each planned image (prefix keys, vision cache). */
  imageKeys: string[];
  prompt: PreparedPrompt | null;
  /** Prompt ids; the full sequence is inputIds ++ tokens. */
  inputIds: number[];
  /** Tokens whose K/V are in the cache. */
  computed: number;
  tokens: number[];
  maxTokens: number;
  /** Hashes of the sequence's full blocks, computed as they fill; `committed` of them are in the cache. */
  hashes: string[];
  committed: number;
  extraKey: (pos: number) => string | undefined;
  rng: SampleRng | null;
  /** Text deltas and stop strings (made at the first token). */
  deltas: DeltaStream | null;
  firstAt: number;
  penalized: boolean;
}

/** Yields to the event loop so the server can take new requests between steps. */
const tick = () => new Promise<void>((r) => setTimeout(r, 0));

async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes as Uint8Array<ArrayBuffer>));
  let s = '';
  for (const b of d) s += b.toString(16).padStart(2, '0');
  return s;
}

/**
 * @example
 * const engine = new LocalEngine({ modelId: 'qwen3-vl-2b', model: opened, eosTokenIds: opened.generation?.eosTokenIds });
 * for await (const ev of engine.stream({ id: 'r1', messages, images: [], sampling })) {
 *   if (ev.kind === 'delta') process.stdout.write(ev.text);
 * }
 */
export class LocalEngine implements Engine {
  readonly modelId: string;
  private readonly o: LocalEngineOptions;
  private readonly kv: PagedKvCache;
  private readonly blockSize: number;
  private readonly chunkSize: number;
  private readonly maxNumSeqs: number;
  private readonly agingMs: number;
  private readonly waitingQ: Seq[] = [];
  private readonly runningQ: Seq[] = [];
  private readonly penalties = new PenaltyState();
  private readonly sessions = new Map<string, { pin: number; expires: number }>();
  private nextSeqId = 1;
  private looping = false;
  private closed = false;
  private idle: Promise<void> = Promise.resolve();
  private idleResolve: (() => void) | null = null;
  private readonly counters: EngineCounters = {
    prefixQueriedTokens: 0,
    prefixHitTokens: 0,
    visionCacheHits: 0,
    visionCacheMisses: 0,
    visionImagesEncoded: 0,
    visionPasses: 0,
    preemptions: 0,
    decodeSteps: 0,
    decodeRows: 0,
  };

  constructor(o: LocalEngineOptions) {
    this.o = o;
    this.modelId = o.modelId;
    this.blockSize = o.blockSize ?? 16;
    this.chunkSize = Math.max(1, o.chunkSize ?? 256);
    this.maxNumSeqs = Math.max(1, o.maxNumSeqs ?? 16);
    this.agingMs = o.agingMs ?? 10_000;
    const m = o.model.model;
    const t = m.config.text;
    const layers = m.layers[1] - m.layers[0];
    const perTokenLayer = t.numKvHeads * t.headDim * 4; // one of K or V, f32
    const limits = m.ctx.caps.limits;
    const maxTensor = Math.min(limits.maxStorageBufferBindingSize, limits.maxBufferSize);
    let blocks = Math.floor((o.kvCacheBytes ?? 2 ** 30) / (2 * layers * perTokenLayer * this.blockSize));
    blocks = Math.min(blocks, Math.floor(maxTensor / (perTokenLayer * this.blockSize)));
    if (o.kvCacheBytes === undefined) {
      const perSeq = Math.min(o.maxModelLen ?? 8192, 8192);
      blocks = Math.min(blocks, Math.ceil((this.maxNumSeqs * perSeq) / this.blockSize) + this.maxNumSeqs);
    }
    this.kv = m.createKvCache({ numBlocks: Math.max(2, blocks), blockSize: this.blockSize });
  }

  /** Tokens the KV cache holds in all. */
  get kvCapacityTokens(): number {
    return this.kv.blocks.numBlocks * this.blockSize;
  }

  stats(): EngineStats {
    const ps = this.kv.blocks.prefixStats;
    return {
      running: this.runningQ.length,
      waiting: this.waitingQ.length,
      kvUsage: this.kv.blocks.usage,
      counters: { ...this.counters, prefixQueriedTokens: ps.queried * this.blockSize, prefixHitTokens: ps.hits * this.blockSize },
    };
  }

  /** Takes no more requests, waits for the queued ones to finish, and frees the cache. */
  async close(): Promise<void> {
    this.closed = true;
    await this.idle;
    for (const s of this.sessions.values()) this.kv.blocks.release(s.pin);
    this.sessions.clear();
    this.kv.release();
  }

  stream(request: GenerationRequest): AsyncIterable<GenerationEvent> {
    return this.run(request);
  }

  private async *run(request: GenerationRequest): AsyncGenerator<GenerationEvent> {
    if (this.closed) throw new EngineClosedError();
    const channel = new EventChannel<GenerationEvent>();
    const local = new AbortController();
    const onAbort = () => {
      local.abort();
      this.kick();
    };
    if (request.signal?.aborted) local.abort();
    request.signal?.addEventListener('abort', onAbort, { once: true });
    const submitted = performance.now();
    const seq: Seq = {
      id: this.nextSeqId++,
      req: request,
      channel,
      signal: local.signal,
      score: CLASS_RANK[request.priority ?? 'interactive'] * this.agingMs + submitted,
      submitted,
      plan: null,
      imageKeys: [],
      prompt: null,
      inputIds: [],
      computed: 0,
      tokens: [],
      maxTokens: request.sampling.maxTokens,
      hashes: [],
      committed: 0,
      extraKey: () => undefined,
      rng: null,
      deltas: null,
      firstAt: 0,
      penalized: false,
    };
    this.waitingQ.push(seq);
    this.kick();
    try {
      yield* channel;
    } finally {
      // The consumer stopped (or the request finished): make sure the generation stops too.
      local.abort();
      request.signal?.removeEventListener('abort', onAbort);
      if (!channel.isEnded) this.kick();
    }
  }

  /** Starts the scheduler loop unless it is running. */
  private kick(): void {
    if (this.looping) return;
    this.looping = true;
    this.idle = new Promise((r) => {
      this.idleResolve = r;
    });
    void this.loop();
  }

  private async loop(): Promise<void> {
    try {
      while (this.waitingQ.length || this.runningQ.length) {
        this.reap();
        await this.admit();
        this.reap();
        const prefilled = await this.prefillStep();
        const decoded = await this.decodeStep();
        if (!prefilled && !decoded && this.runningQ.length === 0 && this.waitingQ.length) {
          // Nothing runs and nothing could be admitted: only possible while the waiting requests
          // are still being planned; give the host work a moment.
          await new Promise((r) => setTimeout(r, 1));
        }
        await tick();
      }
    } finally {
      this.looping = false;
      this.expireSessions();
      this.idleResolve?.();
      if (this.waitingQ.length || this.runningQ.length) this.kick();
    }
  }

  // ── lifecycle ────────────────────────────────────────────────────────────────────────

  /** Ends a sequence: frees its blocks (pinning them for its session), emits its last events. */
  private finish(s: Seq, reason: 'stop' | 'length' | 'abort' | Error): void {
    const w = this.waitingQ.indexOf(s);
    if (w >= 0) this.waitingQ.splice(w, 1);
    const r = this.runningQ.indexOf(s);
    if (r >= 0) this.runningQ.splice(r, 1);
    if (s.req.sessionId && !(reason instanceof Error) && reason !== 'abort' && this.kv.blocks.has(s.id)) this.pinSession(s);
    this.kv.blocks.release(s.id);
    if (s.penalized) this.penalties.release(s.id);
    s.prompt?.release();
    s.prompt = null;
    if (reason instanceof Error) {
      s.channel.fail(reason);
      return;
    }
    const last = s.deltas?.end(reason === 'abort');
    if (last?.stopped) reason = 'stop';
    if (last?.delta) s.channel.push({ kind: 'delta', ...last.delta });
    s.channel.push({
      kind: 'done',
      finishReason: reason,
      promptTokens: s.inputIds.length,
      completionTokens: s.tokens.length,
      ttft: s.firstAt ? (s.firstAt - s.submitted) / 1000 : 0,
    });
    s.channel.end();
  }

  private reap(): void {
    for (const s of [...this.waitingQ, ...this.runningQ]) if (s.signal.aborted) this.finish(s, 'abort');
  }

  private pinSession(s: Seq): void {
    const id = s.req.sessionId!;
    const old = this.sessions.get(id);
    if (old) this.kv.blocks.release(old.pin);
    const pin = this.nextSeqId++;
    this.kv.blocks.fork(s.id, pin, s.committed);
    this.sessions.set(id, { pin, expires: performance.now() + (this.o.sessionTtlMs ?? 300_000) });
  }

  private expireSessions(): void {
    const now = performance.now();
    for (const [id, s] of this.sessions) {
      if (s.expires <= now) {
        this.kv.blocks.release(s.pin);
        this.sessions.delete(id);
      }
    }
  }

  /** Frees the oldest session pin; false when there is none. */
  private dropOldestSession(): boolean {
    let oldest: [string, { pin: number; expires: number }] | null = null;
    for (const e of this.sessions) if (!oldest || e[1].expires < oldest[1].expires) oldest = e;
    if (!oldest) return false;
    this.kv.blocks.release(oldest[1].pin);
    this.sessions.delete(oldest[0]);
    return true;
  }

  /** Frees the blocks of the least urgent running sequence (not `keep`); it waits to be recomputed. */
  private preempt(keep: Seq): boolean {
    let victim: Seq | null = null;
    for (const s of this.runningQ) if (s !== keep && (!victim || s.score > victim.score)) victim = s;
    if (!victim) return false;
    this.runningQ.splice(this.runningQ.indexOf(victim), 1);
    this.kv.blocks.release(victim.id);
    victim.computed = 0;
    victim.committed = 0;
    this.waitingQ.push(victim);
    this.counters.preemptions++;
    return true;
  }

  // ── admission ────────────────────────────────────────────────────────────────────────

  /** Hashes of the first `n` full blocks of `s` (computed and remembered as needed). */
  private hashesUpTo(s: Seq, n: number): string[] {
    if (s.hashes.length < n) {
      const ids = s.tokens.length ? s.inputIds.concat(s.tokens) : s.inputIds;
      while (s.hashes.length < n) {
        const b = s.hashes.length;
        s.hashes.push(blockHash(b ? s.hashes[b - 1] : '', ids, b * this.blockSize, this.blockSize, s.extraKey));
      }
    }
    return s.hashes.slice(0, n);
  }

  private async plan(s: Seq): Promise<void> {
    const m = this.o.model;
    const req = s.req;
    const sp = req.sampling;
    const auto = sp.maxTokensAuto === true;
    const maxLen = this.o.maxModelLen;
    s.plan = await planChat(m, req.messages, req.images, requestPlanOptions(req, this.o));
    s.inputIds = s.plan.inputIds;
    const S = s.inputIds.length;
    if (auto && maxLen) s.maxTokens = Math.max(1, Math.min(sp.maxTokens, maxLen - S));
    // The whole sequence must fit in the cache on its own.
    const cap = this.kvCapacityTokens;
    if (S + s.maxTokens > cap) {
      if (auto && S + 1 <= cap) s.maxTokens = cap - S;
      else throw new ContextLengthError(S, auto ? 1 : s.maxTokens, cap, false);
    }
    s.imageKeys = await Promise.all(s.plan.images.map((img) => sha256Hex(req.images[img.source].bytes)));
    // Prefix keys of the pad tokens: which image, which of its tokens. Video pads never match.
    const cfg = m.config;
    const merge = cfg.vision.spatialMergeSize ** 2;
    const owner = new Map<number, string>();
    let img = 0;
    let within = 0;
    for (let p = 0; p < S; p++) {
      const id = s.inputIds[p];
      if (id === cfg.imageTokenId && img < s.plan.images.length) {
        owner.set(p, `${s.imageKeys[img]}:${within}`);
        const g = s.plan.images[img].grid;
        if (++within === (g[0] * g[1] * g[2]) / merge) {
          img++;
          within = 0;
        }
      } else if (id === cfg.videoTokenId) owner.set(p, `video:${s.id}`);
    }
    s.extraKey = (p) => owner.get(p);
  }

  /** Admits waiting sequences while there is room: plans them, encodes their images together, embeds them. */
  private async admit(): Promise<void> {
    if (this.closed && this.waitingQ.length === 0) return;
    const admitted: Seq[] = [];
    this.waitingQ.sort((a, b) => a.score - b.score);
    while (this.waitingQ.length && this.runningQ.length + admitted.length < this.maxNumSeqs) {
      const s = this.waitingQ[0];
      if (!s.plan) {
        try {
          await this.plan(s);
        } catch (e) {
          this.finish(s, e as Error);
          continue;
        }
        if (s.signal.aborted) {
          this.finish(s, 'abort');
          continue;
        }
      }
      // Tokens to compute: the prompt and, after a preemption, the generated tokens but the last.
      const target = s.inputIds.length + Math.max(0, s.tokens.length - 1);
      const blocks = this.kv.blocks;
      // Adopt cached blocks of the prefix; at least the last token is always computed.
      const adopt = this.o.prefixCaching === false ? [] : this.hashesUpTo(s, Math.floor((target - 1) / this.blockSize));
      const hit = blocks.adoptPrefix(s.id, adopt);
      // Room for the tokens to compute and the first token it decodes next.
      const need = blocks.blocksNeeded(s.id, target - hit + 1);
      while (need > blocks.freeBlocks && this.dropOldestSession()) {}
      if (need > blocks.freeBlocks) {
        blocks.release(s.id);
        break; // wait for running sequences to free blocks (they can always finish or be preempted)
      }
      blocks.grow(s.id, target - hit);
      s.computed = hit;
      s.committed = hit / this.blockSize;
      this.waitingQ.shift();
      admitted.push(s);
    }
    const fresh = admitted.filter((s) => !s.prompt);
    if (fresh.length) {
      try {
        await this.embed(fresh);
      } catch (e) {
        for (const s of fresh) {
          this.runningQ.push(s); // so finish() finds it
          this.finish(s, e as Error);
        }
        for (const s of admitted) if (s.prompt) this.runningQ.push(s);
        return;
      }
    }
    this.runningQ.push(...admitted);
  }

  /**
   * Embeds newly admitted prompts: images looked up in the vision cache, the rest encoded in one
   * vision-tower pass per resolution, then each prompt's embeddings + positions + DeepStack.
   */
  private async embed(seqs: Seq[]): Promise<void> {
    const m = this.o.model;
    const model = m.model;
    const ctx = model.ctx;
    const Hd = m.config.text.hiddenSize;
    const merge = m.config.vision.spatialMergeSize ** 2;
    const cache = this.o.visionCache;
    // Per image: its features as host arrays (cache hit) or a slice of a batched tower output.
    interface Slot {
      seq: Seq;
      index: number;
      grid: Grid;
      tokens: number;
      cacheKey: string | null;
      hit: VisionEmbedding | null;
      out: VisionOutput | null;
      row: number;
    }
    const slots: Slot[] = [];
    for (const s of seqs) {
      for (const [index, img] of s.plan!.images.entries()) {
        const grid = img.grid;
        const key = cache
          ? await visionCacheKey({ modelId: this.modelId, bytes: s.req.images[img.source].bytes, params: { processor: m.imageProcessor, grid: [...grid] } })
          : null;
        const hit = key ? await cache!.get(key) : null;
        if (key) this.counters[hit ? 'visionCacheHits' : 'visionCacheMisses']++;
        slots.push({ seq: s, index, grid, tokens: (grid[0] * grid[1] * grid[2]) / merge, cacheKey: key, hit, out: null, row: 0 });
      }
    }
    // Misses grouped by resolution: one tower pass per group.
    const groups = new Map<string, Slot[]>();
    for (const sl of slots) {
      if (sl.hit) continue;
      const k = sl.grid.join('x');
      groups.set(k, [...(groups.get(k) ?? []), sl]);
    }
    const outputs: VisionOutput[] = [];
    try {
      for (const group of groups.values()) {
        const pixels = group.map((sl) => sl.seq.plan!.images[sl.index].pixelValues);
        const all = new Float32Array(pixels.reduce((n, p) => n + p.length, 0));
        let o = 0;
        for (const p of pixels) {
          all.set(p, o);
          o += p.length;
        }
        const out = model.encodeVision(all, group.map((sl) => sl.grid));
        outputs.push(out);
        this.counters.visionImagesEncoded += group.length;
        this.counters.visionPasses++;
        let row = 0;
        for (const sl of group) {
          sl.out = out;
          sl.row = row;
          row += sl.tokens;
        }
      }
      const stores: Promise<void>[] = [];
      for (const s of seqs) {
        const mine = slots.filter((sl) => sl.seq === s);
        let features: VisionOutput | null = null;
        if (mine.length) {
          const n = mine.reduce((a, sl) => a + sl.tokens, 0);
          const levels = Math.max(...mine.map((sl) => (sl.hit ? sl.hit.deepstack.length : sl.out!.deepstack.length)));
          const merged = ctx.empty([n, Hd], 'f32', 'vision.merged.request');
          const deepstack = Array.from({ length: levels }, (_, l) => ctx.empty([n, Hd], 'f32', `vision.deepstack.${l}.request`));
          let row = 0;
          for (const sl of mine) {
            const len = sl.tokens * Hd;
            if (sl.hit) {
              ctx.write(merged, sl.hit.merged, row * Hd);
              sl.hit.deepstack.forEach((d, l) => {
                ctx.write(deepstack[l], d, row * Hd);
              });
            } else {
              ctx.copy(sl.out!.merged.view(sl.row * Hd, len), merged.view(row * Hd, len));
              sl.out!.deepstack.forEach((d, l) => {
                ctx.copy(d.view(sl.row * Hd, len), deepstack[l].view(row * Hd, len));
              });
              if (sl.cacheKey) stores.push(this.store(sl.cacheKey, sl.tokens, sl.out!, sl.row));
            }
            row += sl.tokens;
          }
          features = {
            merged,
            deepstack,
            tokens: n,
            release() {
              merged.release();
              for (const d of deepstack) d.release();
            },
          };
        }
        const plan = s.plan!;
        try {
          s.prompt = model.prepare(plan.inputIds, {
            ...(features ? { imageFeatures: { features, grids: plan.images.map((i) => i.grid) } } : {}),
            ...(plan.video ? { videos: { pixelValues: plan.video.pixelValues, grids: [plan.video.grid] } } : {}),
          });
        } finally {
          features?.release();
        }
        // The pixels are not needed any more (a preempted sequence keeps its prepared prompt).
        for (const img of plan.images) img.pixelValues = new Float32Array(0);
        if (plan.video) plan.video.pixelValues = new Float32Array(0);
      }
      await Promise.all(stores);
    } finally {
      for (const out of outputs) out.release();
    }
  }

  /** Reads one image's tower output back and stores it in the vision cache (failures only counted by the cache). */
  private async store(key: string, tokens: number, out: VisionOutput, row: number): Promise<void> {
    const ctx = this.o.model.model.ctx;
    const Hd = this.o.model.config.text.hiddenSize;
    const len = tokens * Hd;
    const reads = [out.merged, ...out.deepstack].map((t) => ctx.readF32(t.view(row * Hd, len)));
    const [merged, ...deepstack] = await Promise.all(reads);
    await this.o.visionCache!.set(key, { tokens, hidden: Hd, merged, deepstack });
  }

  // ── steps ────────────────────────────────────────────────────────────────────────────

  private targetOf(s: Seq): number {
    return s.inputIds.length + Math.max(0, s.tokens.length - 1);
  }

  /** Commits the sequence's newly full blocks to the prefix cache. */
  private commitBlocks(s: Seq): void {
    if (this.o.prefixCaching === false) return;
    const full = Math.floor(s.computed / this.blockSize);
    if (full <= s.committed) return;
    const hashes = this.hashesUpTo(s, full);
    for (let b = s.committed; b < full; b++) this.kv.blocks.commit(s.id, b, hashes[b]);
    s.committed = full;
  }

  /** One prefill chunk of the most urgent sequence that still has tokens to compute. */
  private async prefillStep(): Promise<boolean> {
    let s: Seq | null = null;
    for (const c of this.runningQ) if (c.computed < this.targetOf(c) && (!s || c.score < s.score)) s = c;
    if (!s) return false;
    const model = this.o.model.model;
    const ctx = model.ctx;
    const Hd = model.config.text.hiddenSize;
    const S = s.inputIds.length;
    const prompt = s.prompt!;
    const start = s.computed;
    const end = Math.min(start + this.chunkSize, this.targetOf(s), start < S ? S : Number.POSITIVE_INFINITY);
    const T = end - start;
    const hidden = ctx.empty([T, Hd], 'f32', 'prefill.hidden');
    let positions: [Int32Array, Int32Array, Int32Array];
    try {
      if (start < S) {
        ctx.copy(prompt.embeds.view(start * Hd, T * Hd), hidden);
        positions = [0, 1, 2].map((a) => prompt.positions[a].subarray(start, end)) as [Int32Array, Int32Array, Int32Array];
      } else {
        // Recompute after a preemption: generated tokens, embedded from their ids.
        const hostIds = s.tokens.slice(start - S, end - S);
        const ids = ctx.upload(Uint32Array.from(hostIds), [T], 'u32', 'recompute.ids');
        gather(ctx, { ids, table: model.weights.get('model.language_model.embed_tokens.weight'), out: hidden, hostIds });
        ids.release();
        const pos = Int32Array.from({ length: T }, (_, i) => start + i + prompt.ropeDelta);
        positions = [pos, pos, pos];
      }
      model.forward(this.kv, { hidden, seq: s.id, start, positions, deepstack: start < S ? deepstackForChunk(prompt, start, T) : undefined });
      s.computed = end;
      this.commitBlocks(s);
      if (end === S && s.tokens.length === 0) {
        const logits = model.logits(hidden, T - 1, 1);
        try {
          const [id] = await this.sample([s], logits);
          this.accept(s, id);
        } finally {
          logits.release();
        }
      }
    } catch (e) {
      this.finish(s, e as Error);
    } finally {
      hidden.release();
    }
    return true;
  }

  /** One batched decode step of every sequence whose prompt is in the cache. */
  private async decodeStep(): Promise<boolean> {
    const ready = () => this.runningQ.filter((s) => s.tokens.length > 0 && s.computed === this.targetOf(s));
    let batch = ready();
    if (batch.length === 0) return false;
    // Each needs room for one more token; preempt the least urgent sequences when blocks run out.
    batch.sort((a, b) => a.score - b.score);
    for (const s of batch) {
      if (!this.runningQ.includes(s)) continue; // preempted for a more urgent one
      while (!this.kv.blocks.canGrow(s.id, 1)) {
        if (this.dropOldestSession()) continue;
        if (!this.preempt(s)) break;
      }
      if (!this.kv.blocks.canGrow(s.id, 1)) {
        this.finish(s, 'length'); // alone and the cache is full
        continue;
      }
      this.kv.blocks.grow(s.id, 1);
    }
    batch = batch.filter((s) => this.runningQ.includes(s) && this.kv.blocks.length(s.id) === s.computed + 1);
    if (batch.length === 0) return true;
    const model = this.o.model.model;
    const ctx = model.ctx;
    const Hd = model.config.text.hiddenSize;
    const B = batch.length;
    const hidden = ctx.empty([B, Hd], 'f32', 'decode.hidden');
    const hostIds = batch.map((s) => s.tokens[s.tokens.length - 1]);
    const ids = ctx.upload(Uint32Array.from(hostIds), [B], 'u32', 'decode.ids');
    let logits: Tensor | null = null;
    try {
      gather(ctx, { ids, table: model.weights.get('model.language_model.embed_tokens.weight'), out: hidden, hostIds });
      const starts = batch.map((s) => s.computed);
      const pos = Int32Array.from(batch, (s) => s.computed + s.prompt!.ropeDelta);
      model.decodeBatch(this.kv, { hidden, seqs: batch.map((s) => s.id), starts, positions: [pos, pos, pos] });
      logits = model.logits(hidden, 0, B);
      const next = await this.sample(batch, logits);
      this.counters.decodeSteps++;
      this.counters.decodeRows += B;
      batch.forEach((s, i) => {
        s.computed++;
        this.commitBlocks(s);
        this.accept(s, next[i]);
      });
    } catch (e) {
      for (const s of batch) this.finish(s, e as Error);
    } finally {
      ids.release();
      hidden.release();
      logits?.release();
    }
    return true;
  }

  /** Penalties, then argmax (greedy rows) or top-k/top-p (sampled rows) on the GPU; one readback. */
  private async sample(batch: readonly Seq[], logits: Tensor): Promise<number[]> {
    const ctx = this.o.model.model.ctx;
    const V = logits.shape[1];
    for (const s of batch) {
      if (s.penalized) continue;
      const sp = s.req.sampling;
      const settings = { repetition: sp.repetitionPenalty ?? 1, frequency: sp.frequencyPenalty ?? 0, presence: sp.presencePenalty ?? 0 };
      if (penaltiesOff(settings)) continue;
      this.penalties.start(s.id, s.inputIds, settings);
      for (const t of s.tokens) this.penalties.push(s.id, t);
      s.penalized = true;
    }
    const penalized = batch.filter((s) => s.penalized);
    if (penalized.length) {
      // Rows in batch order; rows without penalties get a neutral state.
      const rows = batch.map((s) => s.id);
      const neutral: number[] = [];
      for (const s of batch) {
        if (!s.penalized) {
          this.penalties.start(s.id, [], {});
          neutral.push(s.id);
        }
      }
      try {
        applyPenalties(ctx, logits, this.penalties, rows);
      } finally {
        for (const id of neutral) this.penalties.release(id);
      }
    }
    const out = ctx.empty([batch.length], 'u32', 'sampled');
    // Per-row temporaries live until the readback: a pooled buffer released inside the batch and
    // written again would force an early submit (see GpuContext.write).
    const temps: Tensor[] = [];
    try {
      ctx.run(argmax(ctx, { logits, out }));
      const sampled: number[] = [];
      batch.forEach((s, r) => {
        const sp = s.req.sampling;
        if (!(sp.temperature > 0)) return;
        s.rng ??= new SampleRng(sp.seed ?? 0);
        const u = ctx.upload(s.rng.uniforms(1), [1], 'f32', 'sample.u');
        const row = ctx.empty([1, V], 'f32', 'sample.row');
        const one = ctx.empty([1], 'u32', 'sample.one');
        temps.push(u, row, one);
        ctx.copy(logits.view(r * V, V), row);
        ctx.run(topKTopP(ctx, { logits: row, uniforms: u, out: one, temperature: sp.temperature, topK: sp.topK, topP: sp.topP }));
        ctx.copy(one, out.view(r, 1));
        sampled.push(r);
      });
      const ids = Array.from(await ctx.read(out));
      checkSampled(sampled.map((r) => ids[r]));
      return ids;
    } finally {
      for (const t of temps) t.release();
      out.release();
    }
  }

  /** Takes a sampled token: streams its text, and ends the sequence on EOS, a stop string, max tokens or abort. */
  private accept(s: Seq, id: number): void {
    s.tokens.push(id);
    s.firstAt ||= performance.now();
    if (s.penalized) this.penalties.push(s.id, id);
    s.deltas ??= new DeltaStream(this.o.model.tokenizer.streamingDecoder({ skipSpecialTokens: true }), s.req.sampling.stop ?? []);
    const step = s.deltas.push(id);
    if (step.delta) s.channel.push({ kind: 'delta', ...step.delta });
    if (s.signal.aborted) this.finish(s, 'abort');
    else if (step.stopped) this.finish(s, 'stop');
    else if ((this.o.eosTokenIds ?? []).includes(id)) this.finish(s, 'stop');
    else if (s.tokens.length >= s.maxTokens) this.finish(s, 'length');
  }
}

export { KvCacheFullError };
