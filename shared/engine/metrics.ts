/**
 * Serving metrics: a small Prometheus registry (counters, gauges, histograms, with labels) that
 * renders the text exposition format 0.0.4, and the `vlmesh:` metric set, named after vLLM's so
 * dashboards built for one read the other. Isomorphic: no Node or browser API, so the edge node,
 * the browser worker and the mesh coordinator can all keep one.
 *
 *   # HELP vlmesh:e2e_request_latency_seconds Seconds from request arrival to its last byte.
 *   # TYPE vlmesh:e2e_request_latency_seconds histogram
 *   vlmesh:e2e_request_latency_seconds_bucket{path="local",le="0.5"} 3
 *   …
 *   vlmesh:e2e_request_latency_seconds_bucket{path="local",le="+Inf"} 4
 *   vlmesh:e2e_request_latency_seconds_sum{path="local"} 1.7
 *   vlmesh:e2e_request_latency_seconds_count{path="local"} 4
 *
 * Request metrics carry a `path` label (`local`: this node's engine; `mesh`: the mesh coordinator
 * and its peers; `fallback`: the cloud upstream) so the ways a request can be served stay apart.
 * Gauges that mirror live state (queue, KV cache, GPU memory, the upstream's health, the mesh's
 * peers and hops) take a `collect` callback read at scrape time.
 */
import type { EngineCounters, EngineStats } from './engine.ts';

export type Labels = Readonly<Record<string, string>>;

/** The content type of the exposition format rendered here. */
export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

const NAME_RE = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_RE = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** Escapes a label value: backslash, double quote and line feed. */
export function escapeLabelValue(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

/** Escapes HELP text: backslash and line feed. */
function escapeHelp(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

/** A sample value as the format writes it (`+Inf`, `-Inf`, `NaN`, else the shortest decimal). */
export function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Number.POSITIVE_INFINITY) return '+Inf';
  if (v === Number.NEGATIVE_INFINITY) return '-Inf';
  return String(v);
}

function renderLabels(names: readonly string[], values: readonly string[], extra?: [string, string]): string {
  const parts = names.map((n, i) => `${n}="${escapeLabelValue(values[i])}"`);
  if (extra) parts.push(`${extra[0]}="${escapeLabelValue(extra[1])}"`);
  return parts.length ? `{${parts.join(',')}}` : '';
}

interface MetricOptions {
  name: string;
  help: string;
  labelNames?: readonly string[];
}

/** What every metric kind shares: its name, help, label names and one series per label set. */
abstract class Metric<S> {
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly string[];
  abstract readonly type: 'counter' | 'gauge' | 'histogram';
  protected readonly series = new Map<string, { values: string[]; state: S }>();

  constructor(o: MetricOptions) {
    if (!NAME_RE.test(o.name)) throw new RangeError(`invalid metric name "${o.name}"`);
    for (const l of o.labelNames ?? []) {
      if (!LABEL_RE.test(l) || l.startsWith('__')) throw new RangeError(`invalid label name "${l}" on ${o.name}`);
    }
    this.name = o.name;
    this.help = o.help;
    this.labelNames = o.labelNames ?? [];
  }

  protected abstract initial(): S;

  /** The series for `labels`, created on first use; every label name must be given, no other. */
  protected get(labels: Labels = {}): S {
    const keys = Object.keys(labels);
    if (keys.length !== this.labelNames.length || keys.some((k) => !this.labelNames.includes(k))) {
      throw new RangeError(`${this.name} takes labels {${this.labelNames.join(',')}}, got {${keys.join(',')}}`);
    }
    const values = this.labelNames.map((n) => String(labels[n]));
    const key = JSON.stringify(values);
    let s = this.series.get(key);
    if (!s) {
      s = { values, state: this.initial() };
      this.series.set(key, s);
    }
    return s.state;
  }

  /** Refreshes collected values before rendering (gauges with a `collect` callback). */
  protected refresh(): void {}

  protected abstract samples(values: readonly string[], state: S): string[];

  /** HELP, TYPE and every sample line, in the 0.0.4 text format. */
  render(): string[] {
    this.refresh();
    const out = [`# HELP ${this.name} ${escapeHelp(this.help)}`, `# TYPE ${this.name} ${this.type}`];
    for (const { values, state } of this.series.values()) out.push(...this.samples(values, state));
    return out;
  }

  /** Drops every series. */
  reset(): void {
    this.series.clear();
  }
}

export interface CounterOptions extends MetricOptions {
  /** Called at each scrape with the running total of a source that counts by itself (an engine's counters). */
  collect?: (c: Counter) => void;
}

/** A value that only goes up (requests, tokens). */
export class Counter extends Metric<{ v: number }> {
  readonly type = 'counter' as const;
  private readonly collect?: (c: Counter) => void;
  constructor(o: CounterOptions) {
    super(o);
    this.collect = o.collect;
  }
  /** Sets the total of `labels` from a cumulative source; it never goes down (a source restart keeps the old total). */
  setTotal(labels: Labels, total: number): void {
    const s = this.get(labels);
    if (total > s.v) s.v = total;
  }
  protected override refresh(): void {
    this.collect?.(this);
  }
  protected initial() {
    return { v: 0 };
  }
  /** Adds `by` (≥ 0) to the series of `labels`. */
  inc(labels: Labels = {}, by = 1): void {
    if (!(by >= 0)) throw new RangeError(`${this.name}: a counter only goes up (got ${by})`);
    this.get(labels).v += by;
  }
  /** Creates the series at 0, so it shows before its first event. */
  touch(labels: Labels = {}): void {
    this.get(labels);
  }
  value(labels: Labels = {}): number {
    return this.get(labels).v;
  }
  protected samples(values: readonly string[], s: { v: number }): string[] {
    return [`${this.name}${renderLabels(this.labelNames, values)} ${formatValue(s.v)}`];
  }
}

export interface GaugeOptions extends MetricOptions {
  /** Called at each scrape to set the gauge (live state such as queue length). */
  collect?: (g: Gauge) => void;
}

/** A value that goes up and down. */
export class Gauge extends Metric<{ v: number }> {
  readonly type = 'gauge' as const;
  private readonly collect?: (g: Gauge) => void;
  constructor(o: GaugeOptions) {
    super(o);
    this.collect = o.collect;
  }
  protected initial() {
    return { v: 0 };
  }
  set(labels: Labels, v: number): void {
    this.get(labels).v = v;
  }
  inc(labels: Labels = {}, by = 1): void {
    this.get(labels).v += by;
  }
  value(labels: Labels = {}): number {
    return this.get(labels).v;
  }
  protected override refresh(): void {
    this.collect?.(this);
  }
  protected samples(values: readonly string[], s: { v: number }): string[] {
    return [`${this.name}${renderLabels(this.labelNames, values)} ${formatValue(s.v)}`];
  }
}

export interface HistogramOptions extends MetricOptions {
  /** Upper bounds, strictly increasing; `+Inf` is added. */
  buckets: readonly number[];
}

interface HistogramState {
  /** Non-cumulative count per bucket; the last one is `+Inf`. */
  counts: number[];
  sum: number;
  count: number;
}

/** Observations counted into cumulative `le` buckets, with their sum and count. */
export class Histogram extends Metric<HistogramState> {
  readonly type = 'histogram' as const;
  readonly buckets: readonly number[];
  constructor(o: HistogramOptions) {
    super(o);
    if (o.labelNames?.includes('le')) throw new RangeError(`${o.name}: "le" is reserved for histogram buckets`);
    for (let i = 1; i < o.buckets.length; i++) {
      if (!(o.buckets[i] > o.buckets[i - 1])) throw new RangeError(`${o.name}: buckets must increase strictly`);
    }
    this.buckets = o.buckets.filter((b) => b !== Number.POSITIVE_INFINITY);
  }
  protected initial(): HistogramState {
    return { counts: new Array(this.buckets.length + 1).fill(0), sum: 0, count: 0 };
  }
  observe(labels: Labels, v: number): void {
    if (Number.isNaN(v)) return;
    const s = this.get(labels);
    let i = 0;
    while (i < this.buckets.length && v > this.buckets[i]) i++;
    s.counts[i]++;
    s.sum += v;
    s.count++;
  }
  /** Count and sum of a series (for tests and summaries). */
  snapshot(labels: Labels = {}): { count: number; sum: number } {
    const s = this.get(labels);
    return { count: s.count, sum: s.sum };
  }
  protected samples(values: readonly string[], s: HistogramState): string[] {
    const out: string[] = [];
    let cumulative = 0;
    const bounds = [...this.buckets, Number.POSITIVE_INFINITY];
    for (let i = 0; i < bounds.length; i++) {
      cumulative += s.counts[i];
      out.push(`${this.name}_bucket${renderLabels(this.labelNames, values, ['le', formatValue(bounds[i])])} ${cumulative}`);
    }
    const labels = renderLabels(this.labelNames, values);
    out.push(`${this.name}_sum${labels} ${formatValue(s.sum)}`, `${this.name}_count${labels} ${s.count}`);
    return out;
  }
}

/** A set of metrics rendered together. */
export class Registry {
  private readonly metrics = new Map<string, Counter | Gauge | Histogram>();

  private add<M extends Counter | Gauge | Histogram>(m: M): M {
    if (this.metrics.has(m.name)) throw new RangeError(`metric ${m.name} is registered twice`);
    this.metrics.set(m.name, m);
    return m;
  }
  counter(o: CounterOptions): Counter {
    return this.add(new Counter(o));
  }
  gauge(o: GaugeOptions): Gauge {
    return this.add(new Gauge(o));
  }
  histogram(o: HistogramOptions): Histogram {
    return this.add(new Histogram(o));
  }
  /** The whole registry in the text exposition format 0.0.4 (ends with a newline). */
  render(): string {
    const lines: string[] = [];
    for (const m of this.metrics.values()) lines.push(...m.render());
    return `${lines.join('\n')}\n`;
  }
}

/** How a request was served: `local` on this node's engine, `mesh` by the mesh coordinator (its peers), `fallback` by the cloud upstream. */
export type ServePath = 'local' | 'mesh' | 'fallback';

/** Latency buckets in seconds (vLLM's TTFT buckets, up to 2 minutes). */
export const LATENCY_BUCKETS = [
  0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80, 120,
] as const;
/** Token-count buckets (1, 2, 5 per decade up to 100k). */
export const TOKEN_BUCKETS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000] as const;
/** Decode-speed buckets in tokens per second. */
export const SPEED_BUCKETS = [0.5, 1, 2, 5, 10, 20, 30, 50, 75, 100, 150, 200, 300, 500, 1000] as const;

/** One finished generation, as the API layer saw it. */
export interface RequestSample {
  path: ServePath;
  /** Why it ended: `stop`, `length`, `tool_calls`, `abort`. */
  finishReason: string;
  /** Absent when unknown (an upstream stream without usage): the token metrics skip it. */
  promptTokens?: number;
  completionTokens?: number;
  /** Seconds from submit to the first token; absent when unknown (TTFT and speed skip it). */
  ttft?: number;
  /** Seconds from request arrival to the end of the answer. */
  e2e: number;
}

export interface ServingMetricsOptions {
  /** Live engine state for the running / waiting / KV-cache gauges. */
  engineStats?: () => EngineStats | null;
  /** Bytes the GPU context holds (its buffer pool: in use + free). */
  gpuMemoryBytes?: () => number | null;
  /** Whether the fallback upstream is healthy; given only when there is one (adds `vlmesh:fallback_healthy`). */
  fallbackHealthy?: () => boolean;
  /** The mesh coordinator's peers and hop counters; given only on a coordinator (adds the `vlmesh:mesh_*` metrics). */
  meshHops?: () => readonly MeshHopSample[];
}

/** One mesh peer's hop as the metrics read it (`MeshCoordinator.hops()` fits). */
export interface MeshHopSample {
  peer: string;
  state: 'active' | 'idle' | 'lost';
  /** Bytes of frames sent to / received from the peer. */
  bytesSent: number;
  bytesReceived: number;
  /** Forward round trips completed. */
  forwards: number;
  /** Mean forward round trip, milliseconds. */
  meanRttMs: number;
  /** Bytes of one decoded token's frame to this peer (0 before the first decode step). */
  decodeBytesPerToken: number;
  /** Heartbeat round trip, milliseconds (null before the first). */
  pingRttMs?: number | null;
  /** Bandwidth to the peer measured when it joined, bytes/s (null if unmeasured). */
  bandwidthBytesPerS?: number | null;
}

/**
 * The `vlmesh:` metrics of one serving process.
 *
 * @example
 * const metrics = new ServingMetrics({ engineStats: () => engine.stats() });
 * metrics.recordRequest({ path: 'local', finishReason: 'stop', promptTokens: 12, completionTokens: 3, ttft: 0.2, e2e: 0.5 });
 * res.end(metrics.render());
 */
export class ServingMetrics {
  readonly registry = new Registry();
  readonly ttft: Histogram;
  readonly e2e: Histogram;
  readonly promptTokensHist: Histogram;
  readonly generationTokensHist: Histogram;
  readonly tokensPerSecond: Histogram;
  readonly promptTokens: Counter;
  readonly generationTokens: Counter;
  readonly success: Counter;
  readonly errors: Counter;
  readonly visionCacheHits: Counter;
  /** The engine's own cumulative counters (caches, preemptions, decode batching), read at scrape. */
  readonly engineCounters: Counter[];
  readonly running: Gauge;
  readonly waiting: Gauge;
  readonly kvUsage: Gauge;
  readonly gpuMemory: Gauge;
  /** 1 while the fallback upstream is healthy, 0 while not; null without a fallback. */
  readonly fallbackHealthy: Gauge | null;
  /** The mesh metrics (peers by state, per-hop bytes, forwards, latency); null off a coordinator. */
  readonly mesh: { peers: Gauge; hopBytes: Counter; hopForwards: Counter; hopLatency: Gauge; hopPing: Gauge; hopBandwidth: Gauge; hopDecodeBytes: Gauge } | null;

  constructor(o: ServingMetricsOptions = {}) {
    const r = this.registry;
    const path = ['path'];
    this.ttft = r.histogram({ name: 'vlmesh:time_to_first_token_seconds', help: 'Seconds from submit to the first generated token.', labelNames: path, buckets: LATENCY_BUCKETS });
    this.e2e = r.histogram({ name: 'vlmesh:e2e_request_latency_seconds', help: 'Seconds from request arrival to the end of its answer.', labelNames: path, buckets: LATENCY_BUCKETS });
    this.promptTokensHist = r.histogram({ name: 'vlmesh:request_prompt_tokens', help: 'Prompt tokens per request (image and video tokens included).', labelNames: path, buckets: TOKEN_BUCKETS });
    this.generationTokensHist = r.histogram({ name: 'vlmesh:request_generation_tokens', help: 'Generated tokens per request.', labelNames: path, buckets: TOKEN_BUCKETS });
    this.tokensPerSecond = r.histogram({ name: 'vlmesh:tokens_per_second', help: 'Decode speed per request: tokens after the first over the seconds after the first.', labelNames: path, buckets: SPEED_BUCKETS });
    this.promptTokens = r.counter({ name: 'vlmesh:prompt_tokens_total', help: 'Prompt tokens processed.', labelNames: path });
    this.generationTokens = r.counter({ name: 'vlmesh:generation_tokens_total', help: 'Tokens generated.', labelNames: path });
    this.success = r.counter({ name: 'vlmesh:request_success_total', help: 'Requests that finished, by finish reason.', labelNames: ['path', 'finished_reason'] });
    this.errors = r.counter({ name: 'vlmesh:request_errors_total', help: 'Requests answered with an error, by HTTP status and API error code.', labelNames: ['path', 'status', 'code'] });
    const stats = () => o.engineStats?.() ?? null;
    const fromEngine = (name: string, help: string, key: keyof EngineCounters): Counter => {
      const c = r.counter({ name, help, collect: (m) => m.setTotal({}, stats()?.counters?.[key] ?? 0) });
      c.touch();
      return c;
    };
    this.visionCacheHits = fromEngine('vlmesh:vision_cache_hits_total', 'Images whose vision-tower output came from the vision cache.', 'visionCacheHits');
    this.engineCounters = [
      fromEngine('vlmesh:vision_cache_misses_total', 'Images looked up in the vision cache and not found.', 'visionCacheMisses'),
      fromEngine('vlmesh:vision_encoder_images_total', 'Images run through the vision tower.', 'visionImagesEncoded'),
      fromEngine('vlmesh:vision_encoder_passes_total', 'Vision-tower passes (concurrent images of one resolution share a pass).', 'visionPasses'),
      fromEngine('vlmesh:prefix_cache_queries_total', 'Prompt tokens looked up in the prefix cache (full blocks).', 'prefixQueriedTokens'),
      fromEngine('vlmesh:prefix_cache_hits_total', 'Prompt tokens found in the prefix cache (not recomputed).', 'prefixHitTokens'),
      fromEngine('vlmesh:num_preemptions_total', 'Sequences preempted (KV blocks freed, recomputed later).', 'preemptions'),
      fromEngine('vlmesh:decode_steps_total', 'Batched decode steps run.', 'decodeSteps'),
      fromEngine('vlmesh:decode_batch_rows_total', 'Sequences decoded over all decode steps (mean batch = rows / steps).', 'decodeRows'),
    ];
    this.running = r.gauge({ name: 'vlmesh:num_requests_running', help: 'Requests generating now.', collect: (g) => g.set({}, stats()?.running ?? 0) });
    this.waiting = r.gauge({ name: 'vlmesh:num_requests_waiting', help: 'Requests queued, waiting to run.', collect: (g) => g.set({}, stats()?.waiting ?? 0) });
    this.kvUsage = r.gauge({ name: 'vlmesh:kv_cache_usage_perc', help: 'Fraction of KV-cache blocks in use (1 = full).', collect: (g) => g.set({}, stats()?.kvUsage ?? 0) });
    this.gpuMemory = r.gauge({ name: 'vlmesh:gpu_memory_bytes', help: 'Bytes of GPU buffers the context holds (in use + pooled free).', collect: (g) => g.set({}, o.gpuMemoryBytes?.() ?? 0) });
    const fallbackHealthy = o.fallbackHealthy;
    this.fallbackHealthy = fallbackHealthy
      ? r.gauge({ name: 'vlmesh:fallback_healthy', help: 'Whether the fallback upstream is healthy (1) or not (0).', collect: (g) => g.set({}, fallbackHealthy() ? 1 : 0) })
      : null;
    const meshHops = o.meshHops;
    this.mesh = meshHops
      ? {
          peers: r.gauge({
            name: 'vlmesh:mesh_peers',
            help: 'Mesh peers known to the coordinator, by state (active: holds layers; idle: holds none; lost: dropped).',
            labelNames: ['state'],
            collect: (g) => {
              const n = { active: 0, idle: 0, lost: 0 };
              for (const h of meshHops()) n[h.state]++;
              for (const [state, v] of Object.entries(n)) g.set({ state }, v);
            },
          }),
          hopBytes: r.counter({
            name: 'vlmesh:mesh_hop_bytes_total',
            help: 'Bytes of mesh frames between the coordinator and a peer, by direction (sent to the peer, received from it).',
            labelNames: ['peer', 'direction'],
            collect: (c) => {
              for (const h of meshHops()) {
                c.setTotal({ peer: h.peer, direction: 'sent' }, h.bytesSent);
                c.setTotal({ peer: h.peer, direction: 'received' }, h.bytesReceived);
              }
            },
          }),
          hopForwards: r.counter({
            name: 'vlmesh:mesh_hop_forwards_total',
            help: 'Forward round trips (hidden states out, results back) completed with a peer.',
            labelNames: ['peer'],
            collect: (c) => {
              for (const h of meshHops()) c.setTotal({ peer: h.peer }, h.forwards);
            },
          }),
          hopLatency: r.gauge({
            name: 'vlmesh:mesh_hop_latency_seconds',
            help: 'Mean seconds of a forward round trip to a peer (send to result, the peer\'s compute included).',
            labelNames: ['peer'],
            collect: (g) => {
              for (const h of meshHops()) g.set({ peer: h.peer }, h.meanRttMs / 1000);
            },
          }),
          hopPing: r.gauge({
            name: 'vlmesh:mesh_peer_ping_rtt_seconds',
            help: 'Heartbeat round trip to a peer (ping to pong, no compute), a moving average.',
            labelNames: ['peer'],
            collect: (g) => {
              for (const h of meshHops()) if (h.pingRttMs != null) g.set({ peer: h.peer }, h.pingRttMs / 1000);
            },
          }),
          hopBandwidth: r.gauge({
            name: 'vlmesh:mesh_peer_bandwidth_bytes_per_second',
            help: 'Bandwidth from the coordinator to a peer, measured with a probe frame when the peer joined.',
            labelNames: ['peer'],
            collect: (g) => {
              for (const h of meshHops()) if (h.bandwidthBytesPerS != null) g.set({ peer: h.peer }, h.bandwidthBytesPerS);
            },
          }),
          hopDecodeBytes: r.gauge({
            name: 'vlmesh:mesh_hop_decode_bytes_per_token',
            help: 'Bytes of one decoded token\'s frame to a peer (hidden size x 2 in f16, plus header and positions).',
            labelNames: ['peer'],
            collect: (g) => {
              for (const h of meshHops()) g.set({ peer: h.peer }, h.decodeBytesPerToken);
            },
          }),
        }
      : null;
    for (const c of [this.promptTokens, this.generationTokens]) {
      c.touch({ path: meshHops ? 'mesh' : 'local' });
      if (fallbackHealthy) c.touch({ path: 'fallback' });
    }
  }

  /** Records one generation that reached its `done` event. */
  recordRequest(s: RequestSample): void {
    const path = { path: s.path };
    if (s.ttft !== undefined) this.ttft.observe(path, s.ttft);
    this.e2e.observe(path, s.e2e);
    if (s.promptTokens !== undefined) {
      this.promptTokensHist.observe(path, s.promptTokens);
      this.promptTokens.inc(path, s.promptTokens);
    }
    if (s.completionTokens !== undefined) {
      this.generationTokensHist.observe(path, s.completionTokens);
      this.generationTokens.inc(path, s.completionTokens);
    }
    this.success.inc({ path: s.path, finished_reason: s.finishReason });
    // Decode speed needs two tokens and time after the first one.
    if (s.ttft === undefined || s.completionTokens === undefined) return;
    const decodeSeconds = s.e2e - s.ttft;
    if (s.completionTokens > 1 && decodeSeconds > 0) this.tokensPerSecond.observe(path, (s.completionTokens - 1) / decodeSeconds);
  }

  /** Records a request answered with an error (`status` ≥ 400, or a failure inside a stream). */
  recordError(path: ServePath, status: number, code: string): void {
    this.errors.inc({ path, status: String(status), code });
  }

  /** Everything, in the Prometheus text format 0.0.4. */
  render(): string {
    return this.registry.render();
  }
}
