/**
 * `<vlmesh-chat-message>`: one turn of a conversation. User turns show their text and attachment
 * thumbnails; answers are rendered as safe Markdown (markdown.ts builds HTML from escaped text
 * and a fixed set of tags, so handing it to `unsafeHTML` cannot inject anything). Answers carry
 * Copy and, on the last one, Regenerate; their speed line shows the engine, TTFT and tokens/s.
 *
 * With `large` (the kiosk) the type is bigger and there are no actions.
 *
 * Reflects the speaker as `data-role` and `state` ('streaming' | 'done' | 'error') as attributes for styling and tests.
 *
 * @fires regenerate - the user asked for a new answer to the previous turn
 */
import { css, html, LitElement, nothing, type PropertyValues } from 'lit';
import { unsafeHTML } from 'lit/directives/unsafe-html.js';
import type { StoredMessage } from '../chat/store.ts';
import { renderMarkdown } from '../markdown.ts';
import { baseStyles } from './theme.ts';

/** Formats the answer's speed: "server: m · TTFT 0.41 s · 5.2 tok/s". */
export function formatSpeed(m: { engine: string; ttftS: number; tokensPerS: number }): string {
  return `${m.engine} · TTFT ${m.ttftS.toFixed(2)} s · ${m.tokensPerS.toFixed(1)} tok/s`;
}

export class ChatMessageElement extends LitElement {
  static override properties = {
    message: { attribute: false },
    speaker: { reflect: true, attribute: 'data-role' },
    state: { reflect: true },
    canRegenerate: { type: Boolean, attribute: 'can-regenerate' },
    large: { type: Boolean, reflect: true },
    copied: { state: true },
  };
  declare message: StoredMessage | null;
  declare speaker: string;
  declare state: 'streaming' | 'done' | 'error';
  declare canRegenerate: boolean;
  declare large: boolean;
  declare copied: boolean;
  private urls: { blob: Blob; url: string }[] = [];

  constructor() {
    super();
    this.message = null;
    this.speaker = 'assistant';
    this.state = 'done';
    this.canRegenerate = false;
    this.large = false;
    this.copied = false;
  }

  static override styles = [
    baseStyles,
    css`
      :host {
        display: block;
        margin: 0.75rem 0;
      }
      .bubble {
        border-radius: 12px;
        padding: 0.6rem 0.9rem;
        max-width: 100%;
        overflow-wrap: anywhere;
      }
      :host([data-role='user']) .bubble {
        background: var(--user-bg, #e8effd);
        margin-left: auto;
        width: fit-content;
        max-width: min(100%, 40rem);
        white-space: pre-wrap;
      }
      :host([data-role='assistant']) .bubble {
        background: var(--surface, #fff);
        border: 1px solid var(--border-soft, #e1e6eb);
      }
      :host([large]) {
        font-size: 1.6rem;
      }
      .who {
        font-size: 0.8em;
        font-weight: 600;
        color: var(--muted, #57606a);
        margin-bottom: 0.2rem;
      }
      :host([data-role='user']) .who {
        text-align: right;
      }
      .attachments {
        display: flex;
        flex-wrap: wrap;
        gap: 0.4rem;
        margin-bottom: 0.4rem;
        justify-content: flex-end;
      }
      .attachments img,
      .attachments video {
        max-height: 10rem;
        max-width: 100%;
        border-radius: 8px;
        border: 1px solid var(--border-soft, #e1e6eb);
      }
      .md p {
        margin: 0.3rem 0;
      }
      .md pre {
        background: var(--code-bg, #f6f8fa);
        border-radius: 8px;
        padding: 0.6rem;
        overflow-x: auto;
        font-size: 0.9em;
      }
      .md code {
        font-family: ui-monospace, 'DejaVu Sans Mono', monospace;
        background: var(--code-bg, #f6f8fa);
        border-radius: 4px;
        padding: 0 0.2em;
      }
      .md pre code {
        padding: 0;
        background: none;
      }
      .md ul,
      .md ol {
        padding-left: 1.4rem;
        margin: 0.3rem 0;
      }
      .md a {
        color: var(--link, #1d4ed8);
      }
      .cursor::after {
        content: '▍';
        animation: blink 1s steps(2) infinite;
        color: var(--muted, #57606a);
      }
      @keyframes blink {
        50% {
          opacity: 0;
        }
      }
      @media (prefers-reduced-motion: reduce) {
        .cursor::after {
          animation: none;
        }
      }
      .footer {
        display: flex;
        flex-wrap: wrap;
        align-items: center;
        gap: 0.4rem;
        margin-top: 0.3rem;
        font-size: 0.85rem;
      }
      .footer button {
        min-height: 2rem;
        padding: 0.2rem 0.6rem;
        font-size: 0.85rem;
      }
      .speed {
        color: var(--muted, #57606a);
        margin-left: auto;
      }
    `,
  ];

  protected override willUpdate(changed: PropertyValues<this>): void {
    if (changed.has('message')) {
      this.speaker = this.message?.role ?? 'assistant';
      // Keep object URLs for blobs still shown; revoke the others.
      const blobs = (this.message?.attachments ?? []).map((a) => a.data);
      for (const u of this.urls) if (!blobs.includes(u.blob)) URL.revokeObjectURL(u.url);
      this.urls = blobs.map((b) => this.urls.find((u) => u.blob === b) ?? { blob: b, url: URL.createObjectURL(b) });
    }
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    for (const u of this.urls) URL.revokeObjectURL(u.url);
    this.urls = [];
  }

  override connectedCallback(): void {
    super.connectedCallback();
    if (this.urls.length === 0 && this.message?.attachments?.length) this.requestUpdate('message');
  }

  private async copy(): Promise<void> {
    const text = this.message?.text ?? '';
    try {
      await navigator.clipboard.writeText(text);
    } catch {
      // Clipboard API refused (no permission / insecure context): the selection route.
      const ta = document.createElement('textarea');
      ta.value = text;
      ta.setAttribute('readonly', '');
      ta.style.position = 'fixed';
      ta.style.opacity = '0';
      document.body.append(ta);
      ta.select();
      document.execCommand('copy');
      ta.remove();
    }
    this.copied = true;
    setTimeout(() => (this.copied = false), 1500);
  }

  override render() {
    const m = this.message;
    if (!m) return nothing;
    const isUser = m.role === 'user';
    const atts = m.attachments ?? [];
    return html`
      <article class="msg" aria-label=${isUser ? 'You' : 'Assistant'}>
        <div class="who" aria-hidden="true">${isUser ? 'You' : 'Assistant'}</div>
        ${atts.length
          ? html`<div class="attachments">
              ${atts.map((a, i) => {
                const url = this.urls.find((u) => u.blob === a.data)?.url ?? '';
                return a.kind === 'image'
                  ? html`<img src=${url} alt=${`attached image ${i + 1}: ${a.name}`} />`
                  : html`<video src=${url} controls muted aria-label=${`attached video: ${a.name}`}></video>`;
              })}
            </div>`
          : nothing}
        ${isUser
          ? m.text
            ? html`<div class="bubble">${m.text}</div>`
            : nothing
          : html`<div class="bubble md ${this.state === 'streaming' ? 'cursor' : ''}" aria-busy=${this.state === 'streaming' ? 'true' : 'false'}>
              ${unsafeHTML(renderMarkdown(m.text))}
              ${m.meta?.error ? html`<p class="error" role="alert">${m.meta.error}</p>` : nothing}
              ${m.meta?.finishReason === 'abort' ? html`<p class="muted">(stopped)</p>` : nothing}
            </div>`}
        ${!isUser && this.state !== 'streaming' && !this.large
          ? html`<div class="footer">
              <button type="button" @click=${this.copy} aria-label="Copy answer">${this.copied ? 'Copied' : 'Copy'}</button>
              ${this.canRegenerate
                ? html`<button type="button" @click=${() => this.dispatchEvent(new CustomEvent('regenerate', { bubbles: true, composed: true }))}>
                    Regenerate
                  </button>`
                : nothing}
              ${m.meta && m.meta.finishReason !== 'error' && m.meta.completionTokens > 0 ? html`<span class="speed">${formatSpeed(m.meta)}</span>` : nothing}
            </div>`
          : nothing}
      </article>
    `;
  }
}

customElements.define('vlmesh-chat-message', ChatMessageElement);

declare global {
  interface HTMLElementTagNameMap {
    'vlmesh-chat-message': ChatMessageElement;
  }
}
