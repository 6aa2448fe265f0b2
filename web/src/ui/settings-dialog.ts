/**
 * `<vlmesh-settings-dialog>`: a modal form for the generation settings (system prompt,
 * temperature, max tokens) and the API key of a node that requires one. `show()` opens it with the
 * current values; Save validates and fires the new settings, Cancel / Esc leave them unchanged.
 *
 * @fires settings-change - CustomEvent<ChatSettings> with the saved settings
 */
import { css, html, LitElement } from 'lit';
import { type ChatSettings, DEFAULT_SETTINGS } from '../chat/store.ts';
import { baseStyles } from './theme.ts';

export class SettingsDialogElement extends LitElement {
  static override properties = { settings: { attribute: false }, problem: { state: true } };
  declare settings: ChatSettings;
  declare problem: string;

  constructor() {
    super();
    this.settings = { ...DEFAULT_SETTINGS };
    this.problem = '';
  }

  static override styles = [
    baseStyles,
    css`
      :host {
        display: contents;
      }
      dialog {
        border: none;
        border-radius: 12px;
        padding: 1.2rem;
        width: min(94vw, 32rem);
        box-shadow: 0 10px 40px rgb(0 0 0 / 0.25);
      }
      dialog::backdrop {
        background: rgb(0 0 0 / 0.4);
      }
      h2 {
        margin: 0 0 0.8rem;
        font-size: 1.2rem;
      }
      .field {
        display: grid;
        gap: 0.25rem;
        margin-bottom: 0.8rem;
      }
      label {
        font-weight: 600;
      }
      .hint {
        font-size: 0.85rem;
        color: var(--muted, #57606a);
      }
      textarea {
        min-height: 5rem;
        resize: vertical;
      }
      .row {
        display: flex;
        gap: 0.5rem;
        justify-content: flex-end;
      }
    `,
  ];

  /** Opens the dialog showing the current settings. */
  async show(): Promise<void> {
    this.problem = '';
    await this.updateComplete;
    const form = this.renderRoot.querySelector('form')!;
    form.reset();
    const f = form.elements as HTMLFormControlsCollection & Record<string, HTMLInputElement>;
    f.systemPrompt!.value = this.settings.systemPrompt;
    f.temperature!.value = String(this.settings.temperature);
    f.maxTokens!.value = String(this.settings.maxTokens);
    f.apiKey!.value = this.settings.apiKey;
    this.renderRoot.querySelector('dialog')!.showModal();
  }

  private close(): void {
    this.renderRoot.querySelector('dialog')!.close();
  }

  private save(e: Event): void {
    e.preventDefault();
    const f = (e.target as HTMLFormElement).elements as HTMLFormControlsCollection & Record<string, HTMLInputElement>;
    const temperature = Number(f.temperature!.value);
    const maxTokens = Number(f.maxTokens!.value);
    if (!(temperature >= 0 && temperature <= 2)) {
      this.problem = 'Temperature must be between 0 and 2.';
      f.temperature!.focus();
      return;
    }
    if (!Number.isInteger(maxTokens) || maxTokens < 1 || maxTokens > 32768) {
      this.problem = 'Max tokens must be a whole number from 1 to 32768.';
      f.maxTokens!.focus();
      return;
    }
    const next: ChatSettings = { systemPrompt: f.systemPrompt!.value, temperature, maxTokens, apiKey: f.apiKey!.value.trim() };
    this.settings = next;
    this.dispatchEvent(new CustomEvent<ChatSettings>('settings-change', { detail: next, bubbles: true, composed: true }));
    this.close();
  }

  override render() {
    return html`
      <dialog aria-labelledby="settings-title">
        <form @submit=${this.save} novalidate>
          <h2 id="settings-title">Settings</h2>
          <div class="field">
            <label for="systemPrompt">System prompt</label>
            <textarea id="systemPrompt" name="systemPrompt" placeholder="You are a helpful assistant."></textarea>
          </div>
          <div class="field">
            <label for="temperature">Temperature</label>
            <input id="temperature" name="temperature" type="number" min="0" max="2" step="0.05" inputmode="decimal" aria-describedby="temperature-hint" />
            <span id="temperature-hint" class="hint">0 always picks the most likely token (repeatable answers); higher is more varied.</span>
          </div>
          <div class="field">
            <label for="maxTokens">Max tokens</label>
            <input id="maxTokens" name="maxTokens" type="number" min="1" max="32768" step="1" inputmode="numeric" />
          </div>
          <div class="field">
            <label for="apiKey">API key</label>
            <input id="apiKey" name="apiKey" type="password" autocomplete="off" aria-describedby="key-hint" />
            <span id="key-hint" class="hint">Only for a node started with --api-key. Kept in this browser.</span>
          </div>
          <p class="error" role="alert">${this.problem}</p>
          <div class="row">
            <button type="button" @click=${this.close}>Cancel</button>
            <button type="submit" class="primary">Save</button>
          </div>
        </form>
      </dialog>
    `;
  }
}

customElements.define('vlmesh-settings-dialog', SettingsDialogElement);

declare global {
  interface HTMLElementTagNameMap {
    'vlmesh-settings-dialog': SettingsDialogElement;
  }
}
