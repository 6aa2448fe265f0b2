/**
 * `<vlmesh-donate-page>` at `/donate`: what this tab can offer the mesh and its registration.
 *
 *   navigator.gpu.requestAdapter ─► adapter info, features, limits, memory estimate
 *   createGpuContext ─► measureMatmul (the model's linear kernel) ─► GFLOP/s
 *   POST /v1/mesh/donors ─► registered ─► heartbeat every 10 s (state and last beat shown)
 *
 * With `?token=T` (the node's `--mesh-token`) the tab also joins the mesh as a stage
 * (donate/mesh-stage.ts): it serves the decoder layers the coordinator assigns and shows the
 * layers it holds, the tokens it ran, the mesh's peers and the bytes each way. `?throughput=N`
 * (tokens/s through one layer) replaces the calibration run.
 *
 * WebGPU does not expose a device's memory; the estimate is the largest buffer the adapter
 * allows (`maxBufferSize`, at least `maxStorageBufferBindingSize`), which bounds what one tensor
 * can take and tracks the device's class.
 */
import { css, html, LitElement, nothing } from 'lit';
import { createGpuContext, type GpuContext } from '../../../shared/gpu/context.ts';
import { loadSettings } from '../chat/store.ts';
import { type MatmulBenchmark, measureMatmul } from '../donate/benchmark.ts';
import { joinMeshFromTab, type TabStage } from '../donate/mesh-stage.ts';
import { type DonorOffer, DonorRegistration, type RegistrationState } from '../donate/registration.ts';
import { formatBytes } from '../ui/load-progress.ts';
import { baseStyles } from '../ui/theme.ts';
import { fetchWebConfig } from '../web-config.ts';

const SHOWN_LIMITS = [
  'maxBufferSize',
  'maxStorageBufferBindingSize',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupsPerDimension',
  'maxStorageBuffersPerShaderStage',
] as const;

export class DonatePageElement extends LitElement {
  static override properties = {
    offer: { state: true },
    limits: { state: true },
    bench: { state: true },
    benchError: { state: true },
    registration: { state: true },
    noGpu: { state: true },
    now: { state: true },
    stage: { state: true },
    stageState: { state: true },
    meshPeers: { state: true },
    route: { state: true },
  };
  declare offer: Omit<DonorOffer, 'gflops'> | null;
  declare limits: Record<string, number>;
  declare bench: MatmulBenchmark | null;
  declare benchError: string;
  declare registration: RegistrationState | null;
  declare noGpu: string;
  declare now: number;
  declare stage: TabStage | null;
  /** '' (not asked to join), 'joining', 'serving', 'left: …' or 'failed: …'. */
  declare stageState: string;
  /** Live peers of the mesh (GET /v1/mesh), null before the first answer. */
  declare meshPeers: number | null;
  /** The WebRTC route to the coordinator (`local ↔ remote`). */
  declare route: string;

  private reg: DonorRegistration | null = null;
  private ctx: GpuContext | null = null;
  private clock: ReturnType<typeof setInterval> | undefined;
  private readonly onHide = () => this.reg?.stop();

  constructor() {
    super();
    this.offer = null;
    this.limits = {};
    this.bench = null;
    this.benchError = '';
    this.registration = null;
    this.noGpu = '';
    this.now = Date.now();
    this.stage = null;
    this.stageState = '';
    this.meshPeers = null;
    this.route = '';
  }

  static override styles = [
    baseStyles,
    css`
      :host {
        display: block;
        max-width: 56rem;
        margin: 0 auto;
        padding: 1rem;
        line-height: 1.5;
      }
      h1 {
        font-size: 1.5rem;
        margin: 0.2rem 0 0.2rem;
      }
      .lead {
        margin: 0 0 1rem;
        color: var(--muted, #57606a);
      }
      section {
        background: var(--surface, #fff);
        border: 1px solid var(--border-soft, #e1e6eb);
        border-radius: 12px;
        padding: 0.8rem 1rem;
        margin: 0 0 1rem;
      }
      h2 {
        font-size: 1.1rem;
        margin: 0 0 0.5rem;
      }
      dl {
        display: grid;
        grid-template-columns: max-content minmax(0, 1fr);
        gap: 0.25rem 1rem;
        margin: 0;
      }
      dt {
        color: var(--muted, #57606a);
      }
      dd {
        margin: 0;
        overflow-wrap: anywhere;
        font-variant-numeric: tabular-nums;
      }
      .big {
        font-size: 2rem;
        font-weight: 700;
      }
      .chips {
        display: flex;
        flex-wrap: wrap;
        gap: 0.3rem;
      }
      .chip {
        border: 1px solid var(--border, #c9d1d9);
        border-radius: 999px;
        padding: 0 0.6rem;
        font-size: 0.85rem;
      }
      .state-registered {
        color: var(--ok, #1a7f37);
        font-weight: 600;
      }
      nav a {
        color: var(--link, #1d4ed8);
      }
    `,
  ];

  override connectedCallback(): void {
    super.connectedCallback();
    this.clock = setInterval(() => (this.now = Date.now()), 1000);
    window.addEventListener('pagehide', this.onHide);
    void this.run();
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    clearInterval(this.clock);
    window.removeEventListener('pagehide', this.onHide);
    this.reg?.stop();
    this.stage?.close();
    this.ctx?.destroy();
  }

  private async run(): Promise<void> {
    if (!navigator.gpu) {
      this.noGpu = 'This browser has no WebGPU (navigator.gpu is missing): it cannot donate. A recent Chrome or Edge can.';
      return;
    }
    const adapter = await navigator.gpu.requestAdapter({ powerPreference: 'high-performance' });
    if (!adapter) {
      this.noGpu = 'navigator.gpu.requestAdapter() found no adapter: this device cannot donate.';
      return;
    }
    const info = adapter.info as GPUAdapterInfo & { isFallbackAdapter?: boolean };
    const lim = adapter.limits as unknown as Record<string, number>;
    const limits: Record<string, number> = {};
    for (const k of SHOWN_LIMITS) limits[k] = lim[k]!;
    this.limits = limits;
    this.offer = {
      adapter: {
        vendor: info.vendor ?? '',
        architecture: info.architecture ?? '',
        device: info.device ?? '',
        description: info.description ?? '',
        isFallbackAdapter: Boolean(info.isFallbackAdapter),
      },
      features: [...adapter.features].map(String).sort(),
      memory: {
        estimateBytes: Math.max(adapter.limits.maxBufferSize, adapter.limits.maxStorageBufferBindingSize),
        maxBufferSize: adapter.limits.maxBufferSize,
        maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize,
      },
    };
    try {
      this.ctx = await createGpuContext(navigator.gpu, { label: 'vlmesh-donate' });
      this.bench = await measureMatmul(this.ctx);
    } catch (e) {
      this.benchError = (e as Error).message;
      return;
    }
    this.reg = new DonorRegistration({
      offer: { ...this.offer, gflops: this.bench.gflops },
      apiKey: loadSettings().apiKey,
      onChange: (s) => (this.registration = s),
    });
    const params = new URLSearchParams(location.search);
    const token = params.get('token');
    await Promise.all([this.reg.start(), token ? this.joinStage(token, Number(params.get('throughput')) || undefined) : Promise.resolve()]);
  }

  /** Joins the mesh as a stage and keeps the peer count fresh while serving. */
  private async joinStage(token: string, throughput: number | undefined): Promise<void> {
    this.stageState = 'joining';
    const { modelUrl } = await fetchWebConfig();
    if (!modelUrl) {
      this.stageState = 'failed: this node publishes no model files';
      return;
    }
    try {
      this.stage = await joinMeshFromTab({
        ctx: this.ctx!,
        token,
        modelUrl,
        memoryBytes: this.offer!.memory.estimateBytes,
        throughput,
        onChange: () => this.requestUpdate(),
      });
    } catch (e) {
      this.stageState = `failed: ${(e as Error).message}`;
      return;
    }
    this.stageState = 'serving';
    const apiKey = loadSettings().apiKey;
    const poll = setInterval(() => {
      fetch('/v1/mesh', { headers: apiKey ? { authorization: `Bearer ${apiKey}` } : {}, cache: 'no-store' })
        .then((r) => r.json() as Promise<{ hops?: { state: string }[] }>)
        .then((j) => (this.meshPeers = (j.hops ?? []).filter((h) => h.state !== 'lost').length))
        .catch(() => {});
      void this.stage
        ?.route()
        .then((r) => (this.route = r ? `${r.local} ↔ ${r.remote}` : ''))
        .catch(() => {});
    }, 1000);
    void this.stage.closed.then((reason) => {
      clearInterval(poll);
      this.stageState = `left: ${reason}`;
    });
  }

  private renderStage() {
    if (!this.stageState) return nothing;
    const s = this.stage;
    const range = s?.range() ?? null;
    const t = s?.traffic;
    return html`<section aria-labelledby="stage-h" aria-live="polite">
      <h2 id="stage-h">Mesh stage</h2>
      <dl>
        <dt>State</dt>
        <dd class="stage-state" data-stage-state=${this.stageState.split(':')[0]}>${this.stageState}</dd>
        ${s
          ? html`<dt>Peer id</dt>
              <dd><code>${s.id}</code></dd>
              <dt>Layers held</dt>
              <dd class="layers" data-range=${range ? `${range[0]},${range[1]}` : ''}>${range ? `[${range[0]}, ${range[1]}) — ${range[1] - range[0]} layer${range[1] - range[0] === 1 ? '' : 's'}` : 'none yet'}</dd>
              <dt>Tokens served</dt>
              <dd class="tokens" data-tokens=${t!.tokensServed}>${t!.tokensServed} (${t!.results} chunks)</dd>
              <dt>Peers in the mesh</dt>
              <dd class="peers">${this.meshPeers ?? '…'}</dd>
              <dt>Bytes</dt>
              <dd class="bytes" data-sent=${t!.bytesSent} data-received=${t!.bytesReceived}>${formatBytes(t!.bytesReceived)} in, ${formatBytes(t!.bytesSent)} out</dd>
              <dt>Route</dt>
              <dd class="route">${this.route || '…'}</dd>
              <dt>Weights downloaded</dt>
              <dd>${formatBytes(s.weightBytes())} (${s.throughput.toFixed(1)} tokens/s a layer)</dd>`
          : nothing}
      </dl>
    </section>`;
  }

  private renderRegistration() {
    const r = this.registration;
    if (!r) return html`<p class="muted">Waiting for the measurement…</p>`;
    if (r.state === 'registering') return html`<p>Registering with the coordinator…</p>`;
    if (r.state === 'failed') return html`<p class="error" role="alert">${r.message} (retrying)</p>`;
    const ago = Math.max(0, Math.round((this.now - r.lastHeartbeat) / 1000));
    return html`<dl>
      <dt>State</dt>
      <dd class="state-registered" data-state="registered">Registered</dd>
      <dt>Donor id</dt>
      <dd><code>${r.id}</code></dd>
      <dt>Last heartbeat</dt>
      <dd><time datetime=${new Date(r.lastHeartbeat).toISOString()}>${ago} s ago</time> (every ${r.heartbeatIntervalS} s)</dd>
    </dl>`;
  }

  override render() {
    const o = this.offer;
    return html`
      <nav><a href="/">← Chat</a></nav>
      <h1>Donate this GPU</h1>
      <p class="lead">While this tab stays open it offers its GPU to the vlmesh mesh of this edge node.</p>
      ${this.noGpu ? html`<section role="alert"><p class="error">${this.noGpu}</p></section>` : nothing}
      ${o
        ? html`<section aria-labelledby="adapter-h">
            <h2 id="adapter-h">Adapter</h2>
            <dl>
              <dt>Vendor</dt>
              <dd class="vendor">${o.adapter.vendor || '(not reported)'}</dd>
              <dt>Architecture</dt>
              <dd>${o.adapter.architecture || '(not reported)'}</dd>
              <dt>Description</dt>
              <dd>${o.adapter.description || o.adapter.device || '(not reported)'}</dd>
              <dt>Software adapter</dt>
              <dd>${o.adapter.isFallbackAdapter ? 'yes' : 'no'}</dd>
              <dt>Memory (estimate)</dt>
              <dd class="memory">${formatBytes(o.memory.estimateBytes)} <span class="muted">(largest buffer the adapter allows)</span></dd>
              <dt>Features</dt>
              <dd class="chips">${o.features.length ? o.features.map((f) => html`<span class="chip">${f}</span>`) : '(none)'}</dd>
            </dl>
          </section>
          <section aria-labelledby="limits-h">
            <h2 id="limits-h">Limits</h2>
            <dl>
              ${Object.entries(this.limits).map(([k, v]) => html`<dt>${k}</dt><dd>${k.endsWith('Size') && v >= 1024 ? `${v} (${formatBytes(v)})` : v}</dd>`)}
            </dl>
          </section>`
        : !this.noGpu
          ? html`<p>Looking for a WebGPU adapter…</p>`
          : nothing}
      ${o
        ? html`<section aria-labelledby="speed-h">
            <h2 id="speed-h">Measured speed</h2>
            ${this.bench
              ? html`<p><span class="big gflops" data-gflops=${this.bench.gflops}>${this.bench.gflops.toFixed(2)} GFLOP/s</span></p>
                  <p class="muted">
                    f32 matmul ${this.bench.size.M}×${this.bench.size.K}·${this.bench.size.K}×${this.bench.size.N} with ${this.bench.variant}, ${this.bench.dispatches} runs in
                    ${this.bench.seconds.toFixed(2)} s
                  </p>`
              : this.benchError
                ? html`<p class="error" role="alert">The measurement failed: ${this.benchError}</p>`
                : html`<p aria-live="polite">Measuring…</p>`}
          </section>
          <section aria-labelledby="reg-h" aria-live="polite">
            <h2 id="reg-h">Coordinator</h2>
            ${this.renderRegistration()}
          </section>
          ${this.renderStage()}`
        : nothing}
    `;
  }
}

customElements.define('vlmesh-donate-page', DonatePageElement);

declare global {
  interface HTMLElementTagNameMap {
    'vlmesh-donate-page': DonatePageElement;
  }
}
