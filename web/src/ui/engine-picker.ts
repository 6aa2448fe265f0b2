/**
 * `<vlmesh-engine-picker>`: Server | Local, as a labelled radio group (arrow keys move between
 * the two, as native radios do).
 *
 * @fires engine-change - CustomEvent<EngineKind> when the user picks the other engine
 */
import { css, html, LitElement } from 'lit';
import type { EngineKind } from '../chat/store.ts';
import { baseStyles } from './theme.ts';

export class EnginePickerElement extends LitElement {
  static override properties = { value: {}, disabled: { type: Boolean } };
  declare value: EngineKind;
  declare disabled: boolean;

  constructor() {
    super();
    this.value = 'server';
    this.disabled = false;
  }

  static override styles = [
    baseStyles,
    css`
      fieldset {
        border: 1px solid var(--border, #c9d1d9);
        border-radius: 999px;
        padding: 0.15rem;
        margin: 0;
        display: inline-flex;
        gap: 0.1rem;
      }
      legend {
        position: absolute;
        width: 1px;
        height: 1px;
        overflow: hidden;
        clip: rect(0 0 0 0);
      }
      label {
        border-radius: 999px;
        padding: 0.3rem 0.8rem;
        cursor: pointer;
        display: inline-flex;
        align-items: center;
        min-height: 2.1rem;
      }
      label:has(input:checked) {
        background: var(--accent, #1d4ed8);
        color: #fff;
      }
      label:has(input:focus-visible) {
        outline: 3px solid var(--focus, #1d4ed8);
        outline-offset: 2px;
      }
      input {
        position: absolute;
        opacity: 0;
        width: 1px;
        height: 1px;
      }
    `,
  ];

  private pick(v: EngineKind): void {
    if (v === this.value) return;
    this.value = v;
    this.dispatchEvent(new CustomEvent<EngineKind>('engine-change', { detail: v, bubbles: true, composed: true }));
  }

  override render() {
    const radio = (v: EngineKind, label: string, title: string) => html`<label title=${title}>
      <input type="radio" name="engine" .value=${v} .checked=${this.value === v} ?disabled=${this.disabled} @change=${() => this.pick(v)} />${label}
    </label>`;
    return html`<fieldset>
      <legend>Engine</legend>
      ${radio('server', 'Server', 'Answers come from the edge node')} ${radio('local', 'Local', 'The model runs in this tab on WebGPU')}
    </fieldset>`;
  }
}

customElements.define('vlmesh-engine-picker', EnginePickerElement);

declare global {
  interface HTMLElementTagNameMap {
    'vlmesh-engine-picker': EnginePickerElement;
  }
}
