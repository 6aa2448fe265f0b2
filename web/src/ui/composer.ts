/**
 * `<vlmesh-composer>`: the message box. Text (Enter sends, Shift+Enter starts a new line),
 * images and one short video from the file picker, drag-and-drop or paste, and a photo from the
 * camera when there is one (else the picker, with `capture` so phones offer their camera).
 * While an answer streams the Send button becomes Stop.
 *
 * @fires send - `{ text, attachments }` (CustomEvent<ComposerSendDetail>) when the user sends
 * @fires stop - the user pressed Stop
 */
import { css, html, LitElement, nothing } from 'lit';
import type { StoredAttachment } from '../chat/store.ts';
import { CameraUnavailableError, hasCamera } from './camera-capture.ts';
import './camera-capture.ts';
import { icon } from './icons.ts';
import { baseStyles } from './theme.ts';

export interface ComposerSendDetail {
  text: string;
  attachments: StoredAttachment[];
}

/** Largest image and video accepted (the edge node's request body is capped at 32 MiB of base64). */
export const MAX_IMAGE_BYTES = 16 * 2 ** 20;
export const MAX_VIDEO_BYTES = 20 * 2 ** 20;
export const MAX_IMAGES = 8;

interface Pending extends StoredAttachment {
  url: string;
}

export class ComposerElement extends LitElement {
  static override properties = {
    busy: { type: Boolean, reflect: true },
    disabled: { type: Boolean, reflect: true },
    placeholder: {},
    text: { state: true },
    pending: { state: true },
    dragOver: { state: true },
    problem: { state: true },
  };
  declare busy: boolean;
  declare disabled: boolean;
  declare placeholder: string;
  declare text: string;
  declare pending: Pending[];
  declare dragOver: boolean;
  declare problem: string;

  constructor() {
    super();
    this.busy = false;
    this.disabled = false;
    this.placeholder = 'Ask about an image, a video, or anything…';
    this.text = '';
    this.pending = [];
    this.dragOver = false;
    this.problem = '';
    this.addEventListener('dragover', (e) => {
      if (!e.dataTransfer?.types.includes('Files')) return;
      e.preventDefault();
      e.dataTransfer.dropEffect = 'copy';
      this.dragOver = true;
    });
    this.addEventListener('dragleave', () => (this.dragOver = false));
    this.addEventListener('drop', (e) => {
      e.preventDefault();
      this.dragOver = false;
      if (e.dataTransfer?.files.length) this.addFiles(e.dataTransfer.files);
    });
  }

  static override styles = [
    baseStyles,
    css`
      :host {
        display: block;
      }
      form {
        border: 1px solid var(--border, #c9d1d9);
        border-radius: 12px;
        background: var(--surface, #fff);
        padding: 0.5rem;
      }
      :host([data-drag]) form {
        outline: 3px dashed var(--accent, #1d4ed8);
      }
      textarea {
        width: 100%;
        border: none;
        resize: none;
        min-height: 3rem;
        max-height: 12rem;
        padding: 0.4rem;
        field-sizing: content;
      }
      textarea:focus-visible {
        outline: 2px solid var(--focus, #1d4ed8);
        outline-offset: 0;
      }
      .row {
        display: flex;
        align-items: center;
        gap: 0.4rem;
        flex-wrap: wrap;
      }
      .spacer {
        flex: 1;
      }
      .thumbs {
        display: flex;
        gap: 0.4rem;
        flex-wrap: wrap;
        margin-bottom: 0.4rem;
      }
      .thumb {
        position: relative;
      }
      .thumb img,
      .thumb video {
        height: 4rem;
        width: auto;
        max-width: 8rem;
        border-radius: 6px;
        border: 1px solid var(--border-soft, #e1e6eb);
        display: block;
      }
      .thumb button {
        position: absolute;
        top: -0.5rem;
        right: -0.5rem;
        min-height: 1.6rem;
        width: 1.6rem;
        padding: 0;
        border-radius: 50%;
        font-size: 0.9rem;
        line-height: 1;
      }
      .file-label {
        display: inline-flex;
        align-items: center;
        border: 1px solid var(--border, #c9d1d9);
        border-radius: 8px;
        padding: 0.45rem 0.8rem;
        min-height: 2.5rem;
        cursor: pointer;
      }
      .file-label:focus-within {
        outline: 3px solid var(--focus, #1d4ed8);
        outline-offset: 2px;
      }
      .file-label:hover {
        background: var(--surface-hover, #f3f5f8);
      }
      input[type='file'] {
        position: absolute;
        width: 1px;
        height: 1px;
        opacity: 0;
      }
      .problem {
        margin: 0.3rem 0 0;
        font-size: 0.9rem;
      }
    `,
  ];

  /** Adds files (images, one video) as attachments; refuses other types and oversize files. */
  addFiles(files: FileList | readonly File[]): void {
    const next = [...this.pending];
    const problems: string[] = [];
    for (const f of Array.from(files)) {
      const kind = f.type.startsWith('image/') ? 'image' : f.type.startsWith('video/') ? 'video' : null;
      if (!kind) {
        problems.push(`${f.name}: not an image or a video`);
        continue;
      }
      if (kind === 'image' && f.size > MAX_IMAGE_BYTES) {
        problems.push(`${f.name}: images up to ${MAX_IMAGE_BYTES / 2 ** 20} MB`);
        continue;
      }
      if (kind === 'video' && f.size > MAX_VIDEO_BYTES) {
        problems.push(`${f.name}: videos up to ${MAX_VIDEO_BYTES / 2 ** 20} MB (a short clip)`);
        continue;
      }
      if (kind === 'image' && next.filter((p) => p.kind === 'image').length >= MAX_IMAGES) {
        problems.push(`at most ${MAX_IMAGES} images per message`);
        continue;
      }
      if (kind === 'video') {
        // One video per message: a new one replaces the old.
        const old = next.findIndex((p) => p.kind === 'video');
        if (old !== -1) URL.revokeObjectURL(next.splice(old, 1)[0]!.url);
      }
      next.push({ kind, name: f.name || (kind === 'image' ? 'pasted image' : 'video'), mimeType: f.type, data: f, url: URL.createObjectURL(f) });
    }
    this.pending = next;
    this.problem = problems.join('; ');
  }

  private removeAttachment(i: number): void {
    const p = this.pending[i];
    if (p) URL.revokeObjectURL(p.url);
    this.pending = this.pending.filter((_, j) => j !== i);
  }

  private send(): void {
    if (this.busy || this.disabled) return;
    const text = this.text.trim();
    if (!text && this.pending.length === 0) return;
    const attachments = this.pending.map(({ kind, name, mimeType, data }) => ({ kind, name, mimeType, data }));
    for (const p of this.pending) URL.revokeObjectURL(p.url);
    this.pending = [];
    this.text = '';
    this.problem = '';
    this.dispatchEvent(new CustomEvent<ComposerSendDetail>('send', { detail: { text, attachments }, bubbles: true, composed: true }));
  }

  private onSubmit(e: Event): void {
    e.preventDefault();
    this.send();
  }

  private onKeyDown(e: KeyboardEvent): void {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      this.send();
    }
  }

  private onPaste(e: ClipboardEvent): void {
    const files = Array.from(e.clipboardData?.files ?? []).filter((f) => f.type.startsWith('image/') || f.type.startsWith('video/'));
    if (files.length) {
      e.preventDefault();
      this.addFiles(files);
    }
  }

  private onPick(e: Event): void {
    const input = e.target as HTMLInputElement;
    if (input.files?.length) this.addFiles(input.files);
    input.value = '';
  }

  private async camera(): Promise<void> {
    const fallback = () => this.renderRoot.querySelector<HTMLInputElement>('#camera-file')!.click();
    if (!(await hasCamera())) return fallback();
    try {
      const blob = await this.renderRoot.querySelector('vlmesh-camera-capture')!.capture();
      if (blob) this.addFiles([new File([blob], `photo-${new Date().toISOString().slice(11, 19)}.png`, { type: 'image/png' })]);
    } catch (e) {
      if (e instanceof CameraUnavailableError) fallback();
      else throw e;
    }
  }

  /** Moves keyboard focus to the text box. */
  override focus(): void {
    this.renderRoot.querySelector('textarea')?.focus();
  }

  protected override updated(): void {
    this.toggleAttribute('data-drag', this.dragOver);
  }

  override render() {
    return html`
      <form @submit=${this.onSubmit} aria-label="Compose a message">
        ${this.pending.length
          ? html`<div class="thumbs" aria-label="Attachments">
              ${this.pending.map(
                (p, i) => html`<div class="thumb">
                  ${p.kind === 'image' ? html`<img src=${p.url} alt=${p.name} />` : html`<video src=${p.url} muted aria-label=${p.name}></video>`}
                  <button type="button" aria-label=${`Remove ${p.name}`} @click=${() => this.removeAttachment(i)}>${icon('close')}</button>
                </div>`,
              )}
            </div>`
          : nothing}
        <label class="visually-hidden" for="msg">Message</label>
        <textarea
          id="msg"
          rows="2"
          .value=${this.text}
          placeholder=${this.placeholder}
          aria-describedby="hint"
          @input=${(e: Event) => (this.text = (e.target as HTMLTextAreaElement).value)}
          @keydown=${this.onKeyDown}
          @paste=${this.onPaste}
        ></textarea>
        <span id="hint" class="visually-hidden">Enter sends, Shift+Enter starts a new line, Escape stops the answer.</span>
        <div class="row">
          <label class="file-label">
            ${icon('attach')}&nbsp;Attach
            <input type="file" accept="image/*,video/*" multiple aria-label="Attach image or video" @change=${this.onPick} />
          </label>
          <button type="button" @click=${this.camera} aria-label="Take a photo">${icon('camera')}&nbsp;Camera</button>
          <input id="camera-file" type="file" accept="image/*" capture="environment" tabindex="-1" aria-hidden="true" @change=${this.onPick} />
          <span class="spacer"></span>
          ${this.busy
            ? html`<button type="button" class="danger" @click=${() => this.dispatchEvent(new CustomEvent('stop', { bubbles: true, composed: true }))}>Stop</button>`
            : html`<button type="submit" class="primary" ?disabled=${this.disabled || (!this.text.trim() && this.pending.length === 0)}>Send</button>`}
        </div>
        ${this.problem ? html`<p class="problem error" role="alert">${this.problem}</p>` : nothing}
      </form>
      <vlmesh-camera-capture></vlmesh-camera-capture>
    `;
  }
}

customElements.define('vlmesh-composer', ComposerElement);

declare global {
  interface HTMLElementTagNameMap {
    'vlmesh-composer': ComposerElement;
  }
}
