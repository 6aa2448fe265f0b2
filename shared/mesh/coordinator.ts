/**
 * The mesh coordinator: an `Engine` that runs a model split over peers, pipeline-style.
 *
 *   coordinator (head)                       peers (stages)                   coordinator (tail)
 *   tokens → embeddings + vision → layers [0,h) ─f16→ [h,a) ─f16→ [a,b) … ─f16→ final norm → lm_head → token
 *
 * The coordinator owns the head: embeddings, the vision tower and the first `h` decoder layers,
 * which include every layer that takes DeepStack features, so vision features never leave it. It
 * relays each chunk's hidden states from stage to stage (a star: every hop is coordinator ↔ peer)
 * and keeps the input it sent to every stage boundary, per sequence and chunk.
 *
 * With `h = 0` (a coordinator that runs no layer, `--mesh-only`) the head is a peer instead:
 *
 *   coordinator                    head peer                                      coordinator
 *   tokens, pixels, positions ──▶ embeddings + vision + layers [0,d) ─f16→ [d,a) … ─f16→ lm_head → token
 *
 * It gets each sequence's `prompt` (token ids and preprocessed pixels) once and then `embed`
 * chunks of token ids; the placement gives it at least the DeepStack layers, so vision features
 * stay on that peer too. The coordinator keeps the prompt with the kept chunks: a new head is sent
 * the prompt again and rebuilds from it like any other stage.
 *
 * Faults: every peer is pinged every `heartbeatMs`; a peer silent for `peerTimeoutMs`, one whose
 * link closes, and one that sends a malformed frame (bad checksum, NaN, wrong shape) or an error
 * is dropped. Then the remote layers are replanned with `placeLayers` (least movement), every
 * stage whose range changed gets an `assign` and a replay of the kept boundary inputs of the
 * chunks every stage had finished, and the interrupted chunks are sent again: stages that already
 * ran them return their kept output, so no token is lost or repeated and greedy tokens do not
 * change (up to the f16 rounding of the hops, which is the same on replay).
 *
 * Several requests run at once; each drives its own chunks through the stages, so different
 * stages work on different sequences at the same time.
 */
import type { Engine, EngineStats, GenerationEvent, GenerationRequest } from '../engine/engine.ts';
import { applyPenalties, PenaltyState } from '../engine/penalties.ts';
import { type ChatModel, type EnginePlanSettings, planChat, plannedPixels, requestPlanOptions } from '../engine/prompt.ts';
import { DeltaStream } from '../engine/stop.ts';
import { VlmeshError } from '../errors.ts';
import type { Tensor } from '../gpu/tensor.ts';
import { gather } from '../kernels/embedding/index.ts';
import { argmax, checkSampled, SampleRng, topKTopP } from '../kernels/sample/index.ts';
import { penaltiesOff } from '../kernels/sample/penalties.ts';
import type { PagedKvCache } from '../model/qwen3-vl/kv-cache.ts';
import { deepstackForChunk, type PreparedPrompt } from '../model/qwen3-vl/model.ts';
import { getRopeIndex } from '../model/qwen3-vl/rope-index.ts';
import { type Plan, type PeerCapacity, PlacementError, placeLayers, type Stage } from './placement.ts';
import { type StageInput, StagePeer } from './stage.ts';
import { inProcessLink, type Transport } from './transport.ts';
import { decodeMessage, encodeMessage, type MeshMessage, type Positions, type PromptMessage, type TensorMessage, type WireDType } from './wire.ts';

/** Peer id of the in-process stage that stands in when no peer is left (`localFallback`). */
export const LOCAL_PEER_ID = 'local';

/** A peer was dropped (silent, closed, or sent garbage) while a call to it was pending. */
export class PeerLostError extends VlmeshError {
  constructor(readonly peer: string, reason: string) {
    super('MESH_PEER_LOST', `peer ${peer} was dropped: ${reason}`);
  }
}

/** The mesh cannot serve: no placement fits the peers that are left. */
export class MeshUnavailableError extends VlmeshError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('MESH_UNAVAILABLE', message, options);
  }
}

/** Also: image decoders, the image limit, the context and video preprocessing, as for a LocalEngine. */
export interface MeshCoordinatorOptions extends EnginePlanSettings {
  modelId: string;
  /** The head model: `model.layers` is the head range [0, h); it also needs the final norm and lm_head. */
  model: ChatModel;
  eosTokenIds?: readonly number[];
  /** Prefill chunk length (default 256). */
  chunkSize?: number;
  /** KV blocks of the head's own cache (default 1024 of 16 tokens). */
  numBlocks?: number;
  blockSize?: number;
  /** Dtype of hidden states on the wire (default f16). */
  wireDtype?: WireDType;
  /** Bytes one decoder layer costs on a peer (placement), default 1. */
  layerBytes?: number;
  /** With a head of 0 layers: bytes the head peer needs beyond its layers (embeddings, vision tower); default 0. */
  headBytes?: number;
  heartbeatMs?: number;
  /** A peer silent this long is dropped (default 1000 ms, well inside 2 s). */
  peerTimeoutMs?: number;
  /**
   * When no peer is left, run the remote layers here (the head model's weights must hold them):
   * a stage in this process takes over, rebuilt by replay like any other. Dropped again as soon
   * as a peer joins. Default false (requests then fail with MeshUnavailableError).
   */
  localFallback?: { numBlocks: number };
  /** Called on mesh events (peer dropped, replan done), for logs and tests. */
  onEvent?: (e: MeshEvent) => void;
}

export type MeshEvent =
  | { kind: 'peer-lost'; peer: string; reason: string; silentMs: number }
  | { kind: 'replanned'; epoch: number; stages: Stage[]; replayedChunks: number; ms: number };

/** Per-hop traffic and latency, as `GET /v1/mesh` reports it. */
export interface HopStats {
  peer: string;
  /** What the peer said it is (`hello`): 'node', 'browser', or '' for in-process stages. */
  kind: string;
  adapter: string;
  range: readonly [number, number] | null;
  state: 'active' | 'idle' | 'lost';
  framesSent: number;
  bytesSent: number;
  bytesReceived: number;
  /** Forward round trips (send → result), milliseconds. */
  forwards: number;
  meanRttMs: number;
  /**
   * Bytes per token of the frames sent to this peer for decode steps (one token a frame): hidden
   * states (hidden × 2 + 52 in f16), or, to a head peer, a token id (40 + 12 + 4).
   */
  decodeBytesPerToken: number;
  /** Bytes per token of this peer's results for decode steps (hidden × 2 + 52 in f16). */
  decodeResultBytesPerToken: number;
  /** Heartbeat round trip (ping → pong, no compute), milliseconds: a moving average; null before the first. */
  pingRttMs: number | null;
  /** Coordinator → peer bandwidth measured when the peer joined (a probe frame against a ping), bytes/s; null if unmeasured. */
  bandwidthBytesPerS: number | null;
}

/** What a peer says about itself (shown by `GET /v1/mesh`). */
export interface PeerInfo {
  kind: string;
  adapter: string;
}

interface PeerState {
  id: string;
  info: PeerInfo;
  transport: Transport;
  capacity: PeerCapacity;
  state: 'active' | 'idle' | 'lost';
  lastSeen: number;
  pending: Map<string, { resolve: (m: TensorMessage) => void; reject: (e: Error) => void; sentAt: number; rows: number; decode: boolean }>;
  acks: Map<number, { resolve: () => void; reject: (e: Error) => void }>;
  /** Sequences whose prompt this peer has (it is the head, since its last assignment). */
  prompted: Set<number>;
  /** Pings and probes in flight: nonce → sent at (performance.now()), and who waits for the pong. */
  pings: Map<number, { sentAt: number; waiter?: (ms: number) => void }>;
  link: { pingRttMs: number | null; bandwidthBytesPerS: number | null };
  stats: {
    framesSent: number;
    bytesSent: number;
    bytesReceived: number;
    forwards: number;
    rttSum: number;
    decodeBytes: number;
    decodeFrames: number;
    decodeResultBytes: number;
    decodeResults: number;
  };
}

interface SeqRecord {
  /** Chunks that passed every stage. */
  completed: number;
  /** Input sent to the stage starting at each boundary layer, by chunk index. */
  kept: Map<number, StageInput[]>;
  /** With a head peer: the prompt it needs before the sequence's chunks. */
  prompt: PromptMessage | null;
}

/** An `Engine` whose decoder layers beyond the head run on mesh peers. */
export class MeshCoordinator implements Engine {
  readonly modelId: string;
  private readonly peers = new Map<string, PeerState>();
  /** Remote stages, in pipeline order, covering [h, L). */
  private plan: Stage[] = [];
  private epoch = 0;
  private recovering: Promise<void> | null = null;
  private readonly seqs = new Map<number, SeqRecord>();
  private nextSeq = 1;
  private running = 0;
  private readonly kv: PagedKvCache;
  private readonly penalties = new PenaltyState();
  private readonly timer: ReturnType<typeof setInterval>;
  private lastTick = Date.now();
  private closed = false;
  private nextNonce = 1;

  constructor(private readonly o: MeshCoordinatorOptions) {
    this.modelId = o.modelId;
    this.kv = o.model.model.createKvCache({ numBlocks: o.numBlocks ?? 1024, blockSize: o.blockSize ?? 16 });
    const hb = o.heartbeatMs ?? 200;
    this.timer = setInterval(() => this.heartbeat(), hb);
    (this.timer as { unref?: () => void }).unref?.();
  }

  private get headEnd(): number {
    return this.o.model.model.layers[1];
  }

  private get numLayers(): number {
    return this.o.model.config.text.numLayers;
  }

  /** The remote stages now (absolute layer ranges). */
  stages(): readonly Stage[] {
    return this.plan;
  }

  /** Per-peer hop statistics. */
  hops(): HopStats[] {
    return [...this.peers.values()].map((p) => ({
      peer: p.id,
      kind: p.info.kind,
      adapter: p.info.adapter,
      range: this.plan.find((s) => s.peer === p.id)?.range ?? null,
      state: p.state,
      framesSent: p.stats.framesSent,
      bytesSent: p.stats.bytesSent,
      bytesReceived: p.stats.bytesReceived,
      forwards: p.stats.forwards,
      meanRttMs: p.stats.forwards ? p.stats.rttSum / p.stats.forwards : 0,
      decodeBytesPerToken: p.stats.decodeFrames ? p.stats.decodeBytes / p.stats.decodeFrames : 0,
      decodeResultBytesPerToken: p.stats.decodeResults ? p.stats.decodeResultBytes / p.stats.decodeResults : 0,
      pingRttMs: p.link.pingRttMs,
      bandwidthBytesPerS: p.link.bandwidthBytesPerS,
    }));
  }

  /**
   * Adds a peer and replans (requests in flight continue; moved layers are rebuilt by replay).
   *
   * @throws MeshUnavailableError when no placement fits.
   */
  async addPeer(id: string, transport: Transport, capacity: Omit<PeerCapacity, 'id'>, info: PeerInfo = { kind: '', adapter: '' }): Promise<void> {
    if (id !== LOCAL_PEER_ID) this.dropLocalStage();
    if (this.peers.get(id)?.state !== undefined && this.peers.get(id)!.state !== 'lost') throw new VlmeshError('MESH_PEER_ID', `peer id ${id} is already in the mesh`);
    const p = this.newPeer(id, transport, capacity, info);
    this.peers.set(id, p);
    await this.probeLink(p);
    await this.replan();
  }

  /** Sends a ping (or a probe of `bytes`); resolves with the round trip in ms, or null after `timeoutMs`. */
  private roundTrip(p: PeerState, bytes: number, timeoutMs: number): Promise<number | null> {
    const nonce = this.nextNonce++ >>> 0;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        p.pings.delete(nonce);
        resolve(null);
      }, timeoutMs);
      p.pings.set(nonce, {
        sentAt: performance.now(),
        waiter: (ms) => {
          clearTimeout(timer);
          resolve(ms);
        },
      });
      this.send(p, bytes > 0 ? { kind: 'probe', nonce, bytes } : { kind: 'ping', nonce });
    });
  }

  /**
   * A joining peer's link: the round trip of a ping, then of a 256 KiB probe; the difference is
   * the probe's transfer time. A peer that does not answer keeps null figures (the heartbeats
   * judge it).
   */
  private async probeLink(p: PeerState): Promise<void> {
    const probeBytes = 256 * 1024;
    const rtt = await this.roundTrip(p, 0, 2000);
    if (rtt === null) return;
    p.link.pingRttMs = rtt;
    const withProbe = await this.roundTrip(p, probeBytes, 5000);
    if (withProbe === null) return;
    p.link.bandwidthBytesPerS = probeBytes / (Math.max(withProbe - rtt, 0.01) / 1000);
  }

  private newPeer(id: string, transport: Transport, capacity: Omit<PeerCapacity, 'id'>, info: PeerInfo): PeerState {
    const p: PeerState = {
      id,
      info,
      transport,
      capacity: { id, ...capacity },
      state: 'idle',
      lastSeen: Date.now(),
      pending: new Map(),
      acks: new Map(),
      prompted: new Set(),
      pings: new Map(),
      link: { pingRttMs: null, bandwidthBytesPerS: null },
      stats: { framesSent: 0, bytesSent: 0, bytesReceived: 0, forwards: 0, rttSum: 0, decodeBytes: 0, decodeFrames: 0, decodeResultBytes: 0, decodeResults: 0 },
    };
    transport.onMessage((f) => this.onFrame(p, f));
    transport.onClose((reason) => this.lose(p, `link closed (${reason})`));
    return p;
  }

  /** Drops a peer on purpose (it leaves) and replans. */
  async removePeer(id: string): Promise<void> {
    const p = this.peers.get(id);
    if (!p) return;
    this.lose(p, 'removed');
    await this.recovering;
  }

  private send(p: PeerState, m: MeshMessage): number {
    const frame = encodeMessage(m);
    p.stats.framesSent++;
    p.stats.bytesSent += frame.length;
    p.transport.send(frame);
    return frame.length;
  }

  private onFrame(p: PeerState, frame: Uint8Array): void {
    if (p.state === 'lost') return;
    p.lastSeen = Date.now();
    p.stats.bytesReceived += frame.length;
    let m: MeshMessage;
    try {
      m = decodeMessage(frame, { cols: this.o.model.config.text.hiddenSize });
    } catch (e) {
      this.lose(p, `malformed frame: ${(e as VlmeshError).code}`);
      return;
    }
    switch (m.kind) {
      case 'result': {
        const key = `${m.seq}:${m.chunk}`;
        const call = p.pending.get(key);
        if (!call) return;
        p.pending.delete(key);
        if (m.rows !== call.rows) {
          this.lose(p, 'malformed frame: result shape');
          return;
        }
        p.stats.forwards++;
        p.stats.rttSum += performance.now() - call.sentAt;
        if (call.decode) {
          p.stats.decodeResultBytes += frame.length;
          p.stats.decodeResults++;
        }
        call.resolve(m);
        return;
      }
      case 'assign':
        p.acks.get(m.epoch)?.resolve();
        p.acks.delete(m.epoch);
        return;
      case 'error':
        this.lose(p, `error from peer: ${m.code}: ${m.message}`);
        return;
      case 'pong': {
        const ping = p.pings.get(m.nonce);
        if (!ping) return;
        p.pings.delete(m.nonce);
        const ms = performance.now() - ping.sentAt;
        if (ping.waiter) ping.waiter(ms);
        else p.link.pingRttMs = p.link.pingRttMs === null ? ms : 0.8 * p.link.pingRttMs + 0.2 * ms;
        return;
      }
      default:
        return;
    }
  }

  private heartbeat(): void {
    const now = Date.now();
    const hb = this.o.heartbeatMs ?? 200;
    // This thread was stalled (a long synchronous GPU call): nobody could answer; do not blame peers.
    const stalled = now - this.lastTick > 2 * hb;
    this.lastTick = now;
    for (const p of this.peers.values()) {
      if (p.state === 'lost') continue;
      if (stalled) p.lastSeen = Math.max(p.lastSeen, now - hb);
      if (now - p.lastSeen > (this.o.peerTimeoutMs ?? 1000)) {
        this.lose(p, `silent for ${now - p.lastSeen} ms`);
        continue;
      }
      const nonce = this.nextNonce++ >>> 0;
      // Pings that never came back (a reply lost with a closed link) are forgotten after 10 s.
      for (const [n, ping] of p.pings) if (!ping.waiter && performance.now() - ping.sentAt > 10_000) p.pings.delete(n);
      p.pings.set(nonce, { sentAt: performance.now() });
      this.send(p, { kind: 'ping', nonce });
    }
  }

  /** Marks a peer lost, fails its pending calls, and starts a replan. */
  private lose(p: PeerState, reason: string): void {
    if (p.state === 'lost') return;
    const silentMs = Date.now() - p.lastSeen;
    p.state = 'lost';
    this.o.onEvent?.({ kind: 'peer-lost', peer: p.id, reason, silentMs });
    for (const call of p.pending.values()) call.reject(new PeerLostError(p.id, reason));
    p.pending.clear();
    for (const ack of p.acks.values()) ack.reject(new PeerLostError(p.id, reason));
    p.acks.clear();
    p.transport.close(reason);
    if (this.plan.some((s) => s.peer === p.id) && !this.closed) void this.replan().catch(() => {});
  }

  /** Replans (serialised); a peer lost during the replay triggers another round. */
  private replan(): Promise<void> {
    const prev = this.recovering ?? Promise.resolve();
    const run = prev
      .catch(() => {})
      .then(async () => {
        for (let attempt = 0; ; attempt++) {
          try {
            await this.replanOnce();
            return;
          } catch (e) {
            if (!(e instanceof PeerLostError) || attempt >= 8) throw e;
          }
        }
      });
    this.recovering = run;
    void run.finally(() => {
      if (this.recovering === run) this.recovering = null;
    }).catch(() => {});
    return run;
  }

  private async replanOnce(): Promise<void> {
    const t0 = performance.now();
    const epoch = ++this.epoch;
    const h = this.headEnd;
    const L = this.numLayers;
    let live = [...this.peers.values()].filter((p) => p.state !== 'lost');
    if (live.length === 0 && h < L && this.o.localFallback) {
      this.addLocalStage();
      live = [...this.peers.values()].filter((p) => p.state !== 'lost');
    }
    const old = this.plan;
    let next: Stage[] = [];
    if (h < L) {
      if (live.length === 0) {
        this.plan = [];
        throw new MeshUnavailableError(`no peers left to run layers [${h}, ${L})`);
      }
      const offset = (s: Stage, d: number): Stage => ({ peer: s.peer, range: [s.range[0] + d, s.range[1] + d] });
      let placed: Plan;
      try {
        placed = h > 0
          ? placeLayers(
              { numLayers: L - h, layerBytes: this.o.layerBytes ?? 1, headBytes: 0, headMinLayers: 0 },
              live.map((p) => p.capacity),
              old.length ? { previous: { stages: old.map((s) => offset(s, -h)), bottleneck: 0 } } : {},
            )
          : this.placeWithHeadPeer(live, old);
      } catch (e) {
        this.plan = [];
        throw new MeshUnavailableError(`the mesh cannot hold layers [${h}, ${L}): ${(e as Error).message}`, { cause: e });
      }
      next = placed.stages.map((s) => offset(s, h));
    }
    for (const p of live) p.state = next.some((s) => s.peer === p.id) ? 'active' : 'idle';
    let replayed = 0;
    const same = (a: Stage) => old.some((b) => b.peer === a.peer && b.range[0] === a.range[0] && b.range[1] === a.range[1]);
    for (const stage of next) {
      if (same(stage)) continue;
      const p = this.peers.get(stage.peer)!;
      await this.assign(p, stage, epoch);
      // Replay the chunks every stage finished, from this stage's boundary; its outputs are the
      // next boundary's inputs.
      for (const [seq, rec] of this.seqs) {
        const inputs = rec.kept.get(stage.range[0]) ?? [];
        const outs: TensorMessage[] = [];
        for (let c = 0; c < rec.completed; c++) {
          const m = inputs[c];
          if (!m) throw new MeshUnavailableError(`sequence ${seq}: no kept input of chunk ${c} at layer ${stage.range[0]}`);
          const r = await this.call(p, { ...m, replay: true }, rec);
          outs.push({ ...r, kind: 'forward' });
          replayed++;
        }
        if (stage.range[1] < L) {
          const nextInputs = rec.kept.get(stage.range[1]) ?? [];
          outs.forEach((m, c) => {
            nextInputs[c] = m;
          });
          rec.kept.set(stage.range[1], nextInputs);
        }
      }
    }
    // Boundaries no longer in the plan stop receiving chunks: drop them.
    const bounds = new Set(next.map((s) => s.range[0]));
    for (const rec of this.seqs.values()) for (const b of [...rec.kept.keys()]) if (!bounds.has(b)) rec.kept.delete(b);
    this.plan = next;
    this.o.onEvent?.({ kind: 'replanned', epoch, stages: next, replayedChunks: replayed, ms: performance.now() - t0 });
  }

  /**
   * Placement behind a coordinator that holds no layer: one peer is the head (embeddings, vision,
   * the DeepStack layers). The head so far keeps the role when it is still here; otherwise every
   * peer is tried as the head and the plan with the best bottleneck wins (ties: the one that moves
   * the fewest layers, then join order).
   */
  private placeWithHeadPeer(live: readonly PeerState[], old: readonly Stage[]): Plan {
    const model = {
      numLayers: this.numLayers,
      layerBytes: this.o.layerBytes ?? 1,
      headBytes: this.o.headBytes ?? 0,
      headMinLayers: Math.min(this.numLayers, Math.max(1, this.o.model.config.vision.deepstackVisualIndexes.length)),
    };
    const previous = old.length ? { stages: [...old], bottleneck: 0 } : undefined;
    const oldHead = old[0]?.peer;
    const candidates = live.some((p) => p.id === oldHead) ? [oldHead!] : live.map((p) => p.id);
    let best: { plan: Plan; moved: number } | null = null;
    let lastError: unknown = null;
    for (const head of candidates) {
      try {
        const plan = placeLayers(model, live.map((p) => p.capacity), { head, ...(previous ? { previous } : {}) });
        const moved = movedLayers(old, plan.stages, this.numLayers);
        if (!best || plan.bottleneck > best.plan.bottleneck * (1 + 1e-12) || (plan.bottleneck >= best.plan.bottleneck * (1 - 1e-12) && moved < best.moved)) {
          best = { plan, moved };
        }
      } catch (e) {
        lastError = e;
      }
    }
    if (!best) throw lastError ?? new PlacementError('no peer can be the head');
    return best.plan;
  }

  /** The local stage of `localFallback`: a stage peer in this process on the head's weights. */
  private addLocalStage(): void {
    const m = this.o.model.model;
    const [coordSide, stageSide] = inProcessLink();
    new StagePeer(stageSide, { ctx: m.ctx, config: m.config, weightsFor: async () => m.weights, numBlocks: this.o.localFallback!.numBlocks, wireDtype: 'f32' });
    const p = this.newPeer(LOCAL_PEER_ID, coordSide, { memoryBytes: Number.MAX_SAFE_INTEGER, throughput: 1 }, { kind: 'local', adapter: m.ctx.adapter.description });
    this.peers.set(LOCAL_PEER_ID, p);
  }

  /** A real peer joined: the local stand-in leaves (its layers move by replay). */
  private dropLocalStage(): void {
    const local = this.peers.get(LOCAL_PEER_ID);
    if (local && local.state !== 'lost') this.lose(local, 'a peer joined');
    this.peers.delete(LOCAL_PEER_ID);
  }

  private assign(p: PeerState, stage: Stage, epoch: number): Promise<void> {
    if (p.state === 'lost') return Promise.reject(new PeerLostError(p.id, 'lost before assignment'));
    p.prompted.clear(); // a new range is a new runner: it has no prompt
    return new Promise((resolve, reject) => {
      p.acks.set(epoch, { resolve, reject });
      this.send(p, { kind: 'assign', range: stage.range, epoch });
    });
  }

  /** Sends one chunk to a stage; a head peer first gets the sequence's prompt if it lacks it. */
  private call(p: PeerState, m: StageInput, rec?: SeqRecord): Promise<TensorMessage> {
    if (p.state === 'lost') return Promise.reject(new PeerLostError(p.id, 'already lost'));
    if (m.kind === 'embed' && !p.prompted.has(m.seq)) {
      const prompt = rec?.prompt ?? this.seqs.get(m.seq)?.prompt;
      if (!prompt) return Promise.reject(new MeshUnavailableError(`sequence ${m.seq}: no prompt kept for the head peer`));
      this.send(p, prompt);
      p.prompted.add(m.seq);
    }
    return new Promise((resolve, reject) => {
      const decode = m.rows === 1 && !m.replay;
      p.pending.set(`${m.seq}:${m.chunk}`, { resolve, reject, sentAt: performance.now(), rows: m.rows, decode });
      const bytes = this.send(p, m);
      if (decode) {
        p.stats.decodeBytes += bytes;
        p.stats.decodeFrames++;
      }
    });
  }

  /**
   * Sends one chunk (the head's output) through every remote stage; returns the last stage's
   * output. Retries after a replan: stages that already ran the chunk return their kept output.
   */
  private async throughStages(rec: SeqRecord, head: StageInput): Promise<TensorMessage> {
    for (let attempt = 0; ; attempt++) {
      if (this.recovering) await this.recovering;
      if (this.plan.length === 0) throw new MeshUnavailableError(`no stages to run layers [${this.headEnd}, ${this.numLayers})`);
      const epoch = this.epoch;
      let m: StageInput = head;
      try {
        for (const stage of this.plan) {
          const list = rec.kept.get(stage.range[0]) ?? [];
          list[m.chunk] = m;
          rec.kept.set(stage.range[0], list);
          const r = await this.call(this.peers.get(stage.peer)!, m, rec);
          if (this.epoch !== epoch) break;
          m = { ...r, kind: 'forward' };
        }
        if (this.epoch === epoch) {
          rec.completed = m.chunk + 1;
          return m as TensorMessage;
        }
      } catch (e) {
        if (!(e instanceof PeerLostError) || attempt >= 8) throw e;
      }
      // Wait for the replan the loss started (or that changed the epoch), then send again.
      await new Promise((r) => setTimeout(r, 0));
    }
  }

  async *stream(request: GenerationRequest): AsyncIterable<GenerationEvent> {
    const submitted = performance.now();
    const { model: chat } = this.o;
    const model = chat.model;
    const { ctx, config } = model;
    const Hd = config.text.hiddenSize;
    // Tokenize, preprocess the media and fit the context (host work only).
    const plan = await planChat(chat, request.messages, request.images, requestPlanOptions(request, this.o));
    const { images, videos } = plannedPixels(plan);
    const seq = this.nextSeq++;
    const S = plan.inputIds.length;
    // The head here: embeddings, vision and layers [0, h) on this device. A head peer (h = 0):
    // the prompt goes to it, and only the positions are computed here.
    const remoteHead = this.headEnd === 0;
    let prompt: PreparedPrompt | null = null;
    let positions: [Int32Array, Int32Array, Int32Array];
    let ropeDelta: number;
    if (remoteHead) {
      const rope = getRopeIndex({
        inputIds: plan.inputIds,
        imageGridThw: images?.grids,
        videoGridThw: videos?.grids,
        imageTokenId: config.imageTokenId,
        videoTokenId: config.videoTokenId,
        spatialMergeSize: config.vision.spatialMergeSize,
      });
      positions = rope.positions;
      ropeDelta = rope.ropeDelta;
    } else {
      prompt = model.prepare(plan.inputIds, { ...(images ? { images } : {}), ...(videos ? { videos } : {}) });
      if (prompt.deepstack.length > this.headEnd) {
        prompt.release();
        throw new MeshUnavailableError(`the head runs layers [0, ${this.headEnd}) but DeepStack feeds ${prompt.deepstack.length}: the head must hold them`);
      }
      positions = prompt.positions;
      ropeDelta = prompt.ropeDelta;
    }
    const rec: SeqRecord = {
      completed: 0,
      kept: new Map(),
      prompt: remoteHead ? { kind: 'prompt', seq, inputIds: Uint32Array.from(plan.inputIds), ...(images ? { images } : {}), ...(videos ? { videos } : {}) } : null,
    };
    this.seqs.set(seq, rec);
    this.running++;
    const chunkSize = Math.max(1, this.o.chunkSize ?? 256);
    const wire = this.o.wireDtype ?? 'f16';
    const sp = request.sampling;
    const greedy = !(sp.temperature > 0);
    const rng = greedy ? null : new SampleRng(sp.seed ?? 0);
    const settings = { repetition: sp.repetitionPenalty ?? 1, frequency: sp.frequencyPenalty ?? 0, presence: sp.presencePenalty ?? 0 };
    const penalized = !penaltiesOff(settings);
    if (penalized) this.penalties.start(seq, plan.inputIds, settings);
    const eos = new Set(this.o.eosTokenIds ?? []);
    const deltas = new DeltaStream(chat.tokenizer.streamingDecoder({ skipSpecialTokens: true }), sp.stop ?? []);
    const maxTokens = sp.maxTokensAuto && this.o.maxModelLen ? Math.max(1, Math.min(sp.maxTokens, this.o.maxModelLen - S)) : sp.maxTokens;
    const out = ctx.empty([1], 'u32', 'mesh.sampled');
    let chunk = 0;
    let firstAt = 0;
    const tokens: number[] = [];
    let finishReason: 'stop' | 'length' | 'abort' = 'length';

    /** Samples the next token from the last row of `last`: penalties, then argmax or top-k/top-p. */
    const sample = async (last: Tensor, T: number): Promise<number> => {
      const logits = model.logits(last, T - 1, 1);
      let u: Tensor | null = null;
      try {
        if (penalized) applyPenalties(ctx, logits, this.penalties, [seq]);
        if (greedy) ctx.run(argmax(ctx, { logits, out }));
        else {
          u = ctx.upload(rng!.uniforms(1), [1], 'f32', 'mesh.u');
          ctx.run(topKTopP(ctx, { logits, uniforms: u, out, temperature: sp.temperature, topK: sp.topK, topP: sp.topP }));
        }
        const id = (await ctx.read(out))[0];
        if (!greedy) checkSampled([id]);
        return id;
      } finally {
        logits.release();
        u?.release();
      }
    };

    /**
     * One chunk through the pipeline: `hidden` (head here: its input rows, run through layers
     * [0, h) in place) or `ids` (head peer); returns the next token when `wantToken`.
     */
    const step = async (input: { hidden: Tensor } | { ids: Uint32Array }, start: number, pos: Positions, T: number, wantToken: boolean): Promise<number> => {
      let last: Tensor | null = null;
      let uploaded: Tensor | null = null;
      try {
        if ('hidden' in input) {
          this.kv.blocks.grow(seq, T);
          model.forward(this.kv, { hidden: input.hidden, seq, start, positions: pos, deepstack: start < S && prompt ? deepstackForChunk(prompt, start, T) : undefined });
          last = input.hidden;
          if (this.headEnd < this.numLayers) {
            const values = await ctx.readF32(input.hidden);
            const r = await this.throughStages(rec, { kind: 'forward', seq, chunk, start, positions: pos, hidden: values, rows: T, cols: Hd, dtype: wire });
            uploaded = ctx.upload(r.hidden, [T, Hd], 'f32', 'mesh.hidden');
            last = uploaded;
          }
        } else {
          const r = await this.throughStages(rec, { kind: 'embed', seq, chunk, start, positions: pos, ids: input.ids, rows: T });
          uploaded = ctx.upload(r.hidden, [T, Hd], 'f32', 'mesh.hidden');
          last = uploaded;
        }
        chunk++;
        return wantToken ? await sample(last, T) : -1;
      } finally {
        uploaded?.release();
      }
    };

    try {
      let next = -1;
      const ids = Uint32Array.from(plan.inputIds);
      for (let start = 0; start < S; start += chunkSize) {
        const T = Math.min(chunkSize, S - start);
        const pos = [0, 1, 2].map((a) => positions[a].subarray(start, start + T)) as unknown as Positions;
        if (remoteHead) {
          next = await step({ ids: ids.subarray(start, start + T) }, start, pos, T, start + T === S);
          continue;
        }
        const hidden = ctx.empty([T, Hd], 'f32', 'mesh.prefill');
        ctx.copy(prompt!.embeds.view(start * Hd, T * Hd), hidden);
        try {
          next = await step({ hidden }, start, pos, T, start + T === S);
        } finally {
          hidden.release();
        }
      }
      // The prompt's embeddings and DeepStack features are done with.
      prompt?.release();
      prompt = null;
      const embed = remoteHead ? null : model.weights.get('model.language_model.embed_tokens.weight');
      const idBuf = ctx.empty([1], 'u32', 'mesh.id');
      const hidden = ctx.empty([1, Hd], 'f32', 'mesh.decode');
      try {
        for (let i = 0; ; i++) {
          tokens.push(next);
          if (!firstAt) firstAt = performance.now();
          if (penalized) this.penalties.push(seq, next);
          const shown = deltas.push(next);
          if (shown.delta) yield { kind: 'delta', ...shown.delta };
          if (request.signal?.aborted) {
            finishReason = 'abort';
            break;
          }
          if (shown.stopped) {
            finishReason = 'stop';
            break;
          }
          if (eos.has(next)) {
            finishReason = 'stop';
            break;
          }
          if (tokens.length >= maxTokens) break;
          const at = S + i;
          const p = Int32Array.of(at + ropeDelta);
          if (remoteHead) next = await step({ ids: Uint32Array.of(next) }, at, [p, p, p], 1, true);
          else {
            ctx.write(idBuf, Uint32Array.of(next));
            gather(ctx, { ids: idBuf, table: embed!, out: hidden, hostIds: [next] });
            next = await step({ hidden }, at, [p, p, p], 1, true);
          }
        }
        const last = deltas.end(finishReason === 'abort');
        if (last.stopped) finishReason = 'stop';
        if (last.delta) yield { kind: 'delta', ...last.delta };
      } finally {
        idBuf.release();
        hidden.release();
      }
      yield { kind: 'done', finishReason, promptTokens: S, completionTokens: tokens.length, ttft: (firstAt - submitted) / 1000 };
    } finally {
      out.release();
      prompt?.release();
      if (penalized) this.penalties.release(seq);
      this.kv.blocks.release(seq);
      this.seqs.delete(seq);
      this.running--;
      for (const p of this.peers.values()) {
        if (p.state !== 'lost' && (this.plan.some((s) => s.peer === p.id) || p.prompted.has(seq))) this.send(p, { kind: 'release', seq });
        p.prompted.delete(seq);
      }
    }
  }

  stats(): EngineStats {
    return { running: this.running, waiting: 0, kvUsage: this.kv.blocks.usage };
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    for (const p of this.peers.values()) if (p.state !== 'lost') p.transport.close('coordinator closed');
    this.kv.release();
  }
}

/** Layers whose owner differs between two plans (a layer nobody held counts as moved). */
function movedLayers(before: readonly Stage[], after: readonly Stage[], numLayers: number): number {
  const owner = (plan: readonly Stage[], l: number) => plan.find((s) => s.range[0] <= l && l < s.range[1])?.peer;
  let n = 0;
  for (let l = 0; l < numLayers; l++) if (owner(before, l) !== owner(after, l)) n++;
  return n;
}
