/**
 * `<vlmesh-load-progress>`: the local engine's weight download — a progress bar with bytes
 * done / total, speed and time left, and a Cancel button.
 *
 * @fires cancel - the user cancelled the download
 */
import { css, html, LitElement } from 'lit';
import type { LoadProgress } from '../engine/local-loader.ts';
import { baseStyles } from './theme.ts';

/** "12.3 MB" style sizes (decimal units, as download managers show). */
export function formatBytes(n: number): string {
  if (!Number.isFinite(n) || n < 0) return '?';
  if (n < 1000) return `${n} B`;
  const units = ['kB', 'MB', 'GB', 'TB'];
  let v = n / 1000;
  let u = 0;
  while (v >= 1000 && u < units.length - 1) {
    v /= 1000;
    u++;
  }
  return `${v.toFixed(v < 10 ? 2 : v < 100 ? 1 : 0)} ${units[u]}`;
}

/** "1 min 05 s" style durations. */
export function formatDuration(s: number): string {
  if (!Number.isFinite(s) || s < 0) return '…';
  const t = Math.round(s);
  if (t < 60) return `${t} s`;
  const m = Math.floor(t / 60);
  if (m < 60) return `${m} min ${String(t % 60).padStart(2, '0')} s`;
  return `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, '0')} min`;
}

export class LoadProgressElement extends LitElement {
  static override properties = { progress: { attribute: false } };
  declare progress: LoadProgress | null;

  constructor() {
    super();
    this.progress = null;
  }

  static override styles = [
    baseStyles,
    css`
      :host {
        display: block;
        border: 1px solid var(--border-soft, #e1e6eb);
        border-radius: 10px;
        padding: 0.6rem 0.8rem;
        background: var(--surface, #fff);
      }
      .top {
        display: flex;
        flex-wrap: wrap;
        gap: 0.5rem;
        align-items: center;
      }
      .label {
        flex: 1;
        min-width: 12rem;
      }
      progress {
        width: 100%;
        height: 0.8rem;
        margin-top: 0.4rem;
        accent-color: var(--accent, #1d4ed8);
      }
      .numbers {
        font-size: 0.85rem;
        color: var(--muted, #57606a);
        font-variant-numeric: tabular-nums;
      }
    `,
  ];

  override render() {
    const p = this.progress;
    const known = p !== null && p.totalBytes > 0;
    const numbers = p
      ? `${formatBytes(p.loadedBytes)}${known ? ` of ${formatBytes(p.totalBytes)}` : ''} · ${formatBytes(p.bytesPerSecond)}/s · ${
          known ? `${formatDuration(p.etaSeconds)} left` : 'size unknown'
        }`
      : 'starting…';
    return html`
      <div class="top">
        <span class="label" id="lbl">Loading the model into this tab${p?.phase ? ` — ${p.phase}` : ''}</span>
        <button type="button" @click=${() => this.dispatchEvent(new CustomEvent('cancel', { bubbles: true, composed: true }))}>Cancel</button>
      </div>
      <progress aria-labelledby="lbl" aria-describedby="nums" max=${known ? p.totalBytes : 1} .value=${known ? p.loadedBytes : 0}></progress>
      <div class="numbers" id="nums" aria-live="polite">${numbers}</div>
    `;
  }
}

customElements.define('vlmesh-load-progress', LoadProgressElement);

declare global {
  interface HTMLElementTagNameMap {
    'vlmesh-load-progress': LoadProgressElement;
  }
}
