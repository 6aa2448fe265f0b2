/**
 * The local engine's test page (`/local-harness.html?model=/models/<name>/`): a page with no UI
 * framework that loads the engine and exposes it to browser tests as `window.vlmeshLocal`
 * (and `window.runPrompt`). It shows the load progress and any error as text, as the chat UI
 * would. Query: `model` (directory URL), `chunk` (download piece bytes), `warmup=0`.
 */
import type { EngineStats } from '../../../shared/engine/engine.ts';
import { VlmeshError } from '../../../shared/errors.ts';
import {
  checkLocalSupport,
  type LoadProgress,
  type LocalSupport,
  type OpenedInfo,
  openLocalEngine,
  formatBytes,
  formatEta,
  type WorkerEngine,
} from './local-engine-client.ts';

/** An error as the page reports it to a test. */
export interface HarnessError {
  name: string;
  code: string | null;
  message: string;
  fields: Record<string, unknown>;
}

export interface HarnessLoad {
  ok: boolean;
  /** Wall time of openLocalEngine, seconds. */
  seconds: number;
  info: OpenedInfo | null;
  /** Every progress report received. */
  progress: LoadProgress[];
  error: HarnessError | null;
}

export interface HarnessRun {
  tokenIds: number[];
  text: string;
  finishReason: string;
  promptTokens: number;
  /** Seconds from the request to the first token. */
  ttftSeconds: number;
  /** Tokens after the first, per second of decoding. */
  decodeTokensPerSecond: number;
  seconds: number;
}

export interface HarnessApi {
  check(): Promise<LocalSupport>;
  load(): Promise<HarnessLoad>;
  /**
   * One greedy turn; `imageBase64` attaches a PNG/JPEG/WebP image before the text; with
   * `abortAfterTokens` the request's AbortSignal fires once that many tokens arrived.
   */
  runPrompt(text: string, maxTokens: number, imageBase64?: string, abortAfterTokens?: number): Promise<HarnessRun>;
  /** The engine's statistics (as the worker last reported them). */
  stats(): EngineStats | null;
  close(): Promise<void>;
}

declare global {
  interface Window {
    vlmeshLocal: HarnessApi;
    runPrompt: HarnessApi['runPrompt'];
  }
}

const params = new URLSearchParams(location.search);
const modelUrl = params.get('model') ?? '/models/tiny/';
const chunk = params.get('chunk');
const statusEl = document.getElementById('status') as HTMLElement;
const errorEl = document.getElementById('error') as HTMLElement;
const bar = document.getElementById('load-progress') as HTMLProgressElement;
const output = document.getElementById('output') as HTMLElement;
let engine: WorkerEngine | null = null;

function describe(e: unknown): HarnessError {
  const err = e instanceof Error ? e : new Error(String(e));
  const fields: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(err)) if (typeof v !== 'function') fields[k] = v;
  return { name: err.name, code: err instanceof VlmeshError ? err.code : null, message: err.message, fields };
}

function showProgress(p: LoadProgress): void {
  bar.max = Math.max(1, p.totalBytes);
  bar.value = p.loadedBytes;
  const amount =
    p.phase === 'compile'
      ? `${p.loadedBytes}/${p.totalBytes}`
      : `${formatBytes(p.loadedBytes)} of ${formatBytes(p.totalBytes)}, ${formatBytes(p.bytesPerSecond)}/s, ${formatEta(p.etaSeconds)} left`;
  statusEl.textContent = `${p.phase}: ${amount}`;
}

function base64Bytes(b64: string): Uint8Array {
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

window.vlmeshLocal = {
  check: () => checkLocalSupport(modelUrl),

  async load(): Promise<HarnessLoad> {
    const progress: LoadProgress[] = [];
    const t0 = performance.now();
    errorEl.hidden = true;
    try {
      engine = await openLocalEngine({
        modelUrl,
        ...(chunk ? { chunkBytes: Number(chunk) } : {}),
        ...(params.get('warmup') === '0' ? { warmUp: false } : {}),
        onProgress: (p) => {
          progress.push(p);
          showProgress(p);
        },
      });
      const seconds = (performance.now() - t0) / 1000;
      statusEl.textContent = `ready: ${engine.modelId} (${engine.info.dtype}) in ${seconds.toFixed(1)} s`;
      return { ok: true, seconds, info: engine.info, progress, error: null };
    } catch (e) {
      const error = describe(e);
      errorEl.textContent = error.message;
      errorEl.dataset.code = error.code ?? '';
      errorEl.hidden = false;
      statusEl.textContent = 'failed';
      return { ok: false, seconds: (performance.now() - t0) / 1000, info: null, progress, error };
    }
  },

  async runPrompt(text: string, maxTokens: number, imageBase64?: string, abortAfterTokens?: number): Promise<HarnessRun> {
    if (!engine) throw new Error('load() the engine first');
    const ac = new AbortController();
    const images = imageBase64 ? [{ bytes: base64Bytes(imageBase64) }] : [];
    const content = [...images.map(() => ({ type: 'image' })), { type: 'text', text }];
    const t0 = performance.now();
    let first = 0;
    const tokenIds: number[] = [];
    let out = '';
    let finishReason = '';
    let promptTokens = 0;
    for await (const ev of engine.stream({
      id: `harness-${Date.now()}`,
      messages: [{ role: 'user', content }],
      images,
      sampling: { maxTokens, temperature: 0, topP: 1, topK: 0 },
      signal: ac.signal,
    })) {
      if (ev.kind === 'delta') {
        if (!first && ev.tokenIds.length) first = performance.now();
        tokenIds.push(...ev.tokenIds);
        if (abortAfterTokens !== undefined && tokenIds.length >= abortAfterTokens) ac.abort();
        out += ev.text;
        output.textContent = out;
      } else {
        finishReason = ev.finishReason;
        promptTokens = ev.promptTokens;
      }
    }
    const end = performance.now();
    return {
      tokenIds,
      text: out,
      finishReason,
      promptTokens,
      ttftSeconds: ((first || end) - t0) / 1000,
      decodeTokensPerSecond: tokenIds.length > 1 && end > first ? ((tokenIds.length - 1) * 1000) / (end - first) : 0,
      seconds: (end - t0) / 1000,
    };
  },

  stats: () => engine?.stats() ?? null,

  async close(): Promise<void> {
    await engine?.close();
    engine = null;
  },
};
window.runPrompt = (text, maxTokens, imageBase64, abortAfterTokens) => window.vlmeshLocal.runPrompt(text, maxTokens, imageBase64, abortAfterTokens);
statusEl.textContent = `idle (model ${modelUrl})`;
