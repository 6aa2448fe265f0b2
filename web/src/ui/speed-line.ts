/**
 * `<vlmesh-speed-line>`: which engine answers and how fast — "Server · model · TTFT 0.41 s ·
 * 5.2 tok/s" after a turn, the engine's state before one.
 */
import { css, html, LitElement, nothing } from 'lit';
import { baseStyles } from './theme.ts';

export class SpeedLineElement extends LitElement {
  static override properties = { engine: {}, status: {}, ttftS: { attribute: false }, tokensPerS: { attribute: false } };
  declare engine: string;
  declare status: string;
  declare ttftS: number | null;
  declare tokensPerS: number | null;

  constructor() {
    super();
    this.engine = '';
    this.status = '';
    this.ttftS = null;
    this.tokensPerS = null;
  }

  static override styles = [
    baseStyles,
    css`
      :host {
        display: block;
        font-size: 0.85rem;
        color: var(--muted, #57606a);
        font-variant-numeric: tabular-nums;
        min-height: 1.3em;
      }
      strong {
        color: var(--fg, #1b1f24);
        font-weight: 600;
      }
    `,
  ];

  override render() {
    return html`<span role="status"
      ><strong>${this.engine || 'No engine'}</strong>${this.status ? html` · ${this.status}` : nothing}${this.ttftS !== null
        ? html` · TTFT <span class="ttft">${this.ttftS.toFixed(2)} s</span>`
        : nothing}${this.tokensPerS !== null ? html` · <span class="tps">${this.tokensPerS.toFixed(1)} tok/s</span>` : nothing}</span
    >`;
  }
}

customElements.define('vlmesh-speed-line', SpeedLineElement);

declare global {
  interface HTMLElementTagNameMap {
    'vlmesh-speed-line': SpeedLineElement;
  }
}
