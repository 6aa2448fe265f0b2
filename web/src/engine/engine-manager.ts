/**
 * Which engine the page talks to, and getting it ready:
 *
 *   server ─► GET /v1/models ─► ready "Server · <model>"          (or error: the server's words)
 *   local  ─► import the local engine module (lazy chunk)
 *          ─► checkLocalSupport(modelUrl) ─► unsupported: the reason (the page offers the server)
 *          ─► openLocalEngine(modelUrl, progress) ─► loading … ─► ready "Local (f16) · <model>"
 *
 * Engines once opened are kept, so switching back is instant; a local load in progress is
 * aborted when the user switches away or cancels.
 */
import type { Engine } from '../../../shared/engine/engine.ts';
import type { EngineKind } from '../chat/store.ts';
import { type LoadProgress, loadLocalEngineModule } from './local-loader.ts';
import { openServerEngine } from './server-engine.ts';

export type EngineStatus =
  | { state: 'connecting'; kind: EngineKind }
  | { state: 'loading'; kind: 'local'; progress: LoadProgress | null }
  | { state: 'ready'; kind: EngineKind; engine: Engine; label: string }
  | { state: 'unsupported'; kind: 'local'; reason: string }
  | { state: 'error'; kind: EngineKind; message: string };

export interface EngineManagerOptions {
  /** Base URL of the local engine's model files; null when the node publishes none. */
  modelUrl: string | null;
  onChange: (s: EngineStatus) => void;
}

/**
 * @example
 * const m = new EngineManager({ modelUrl: '/models/m/', onChange: (s) => render(s) });
 * await m.select('server', { apiKey: '' });
 */
export class EngineManager {
  status: EngineStatus = { state: 'connecting', kind: 'server' };
  private server: { engine: Engine; key: string } | null = null;
  private local: { engine: Engine; label: string } | null = null;
  private loadAbort: AbortController | null = null;
  private generation = 0;

  constructor(private readonly o: EngineManagerOptions) {}

  private set(s: EngineStatus, gen: number): void {
    if (gen !== this.generation) return; // a later select() superseded this one
    this.status = s;
    this.o.onChange(s);
  }

  /** Switches to `kind`, opening it when needed. */
  async select(kind: EngineKind, o: { apiKey: string }): Promise<void> {
    const gen = ++this.generation;
    this.loadAbort?.abort();
    this.loadAbort = null;
    if (kind === 'server') {
      if (this.server && this.server.key === o.apiKey) {
        this.set({ state: 'ready', kind, engine: this.server.engine, label: `Server · ${this.server.engine.modelId}` }, gen);
        return;
      }
      this.set({ state: 'connecting', kind }, gen);
      try {
        const engine = await openServerEngine({ apiKey: o.apiKey });
        this.server = { engine, key: o.apiKey };
        this.set({ state: 'ready', kind, engine, label: `Server · ${engine.modelId}` }, gen);
      } catch (e) {
        this.set({ state: 'error', kind, message: (e as Error).message }, gen);
      }
      return;
    }
    if (this.local) {
      this.set({ state: 'ready', kind, engine: this.local.engine, label: this.local.label }, gen);
      return;
    }
    this.set({ state: 'connecting', kind }, gen);
    const abort = new AbortController();
    this.loadAbort = abort;
    try {
      const mod = await loadLocalEngineModule();
      if (!this.o.modelUrl) {
        this.set({ state: 'unsupported', kind, reason: 'This node publishes no model for in-browser use (it runs without --model).' }, gen);
        return;
      }
      const support = await mod.checkLocalSupport(this.o.modelUrl);
      if (!support.ok) {
        this.set({ state: 'unsupported', kind, reason: support.reason }, gen);
        return;
      }
      this.set({ state: 'loading', kind, progress: null }, gen);
      const engine = await mod.openLocalEngine({
        modelUrl: this.o.modelUrl,
        signal: abort.signal,
        onProgress: (progress) => {
          if (!abort.signal.aborted) this.set({ state: 'loading', kind, progress }, gen);
        },
      });
      if (abort.signal.aborted) {
        await engine.close();
        return;
      }
      this.local = { engine, label: `Local (${support.dtype}) · ${engine.modelId}` };
      this.set({ state: 'ready', kind, engine, label: this.local.label }, gen);
    } catch (e) {
      if (abort.signal.aborted) return;
      this.set({ state: 'unsupported', kind, reason: (e as Error).message }, gen);
    } finally {
      if (this.loadAbort === abort) this.loadAbort = null;
    }
  }

  /** Stops a local load in progress (the status becomes an error the page can show). */
  cancelLoad(): void {
    if (!this.loadAbort) return;
    this.loadAbort.abort();
    this.loadAbort = null;
    this.set({ state: 'unsupported', kind: 'local', reason: 'Loading was cancelled.' }, this.generation);
  }
}
