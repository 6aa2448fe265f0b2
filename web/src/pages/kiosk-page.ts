/**
 * `<vlmesh-kiosk-page>`: the locked-down chat of an edge box (`vlmesh serve --kiosk`, `/kiosk`).
 * Server engine only, no settings, no saved history: a big "What is this?" button (camera, or the
 * file picker when there is none), a large-type text box, and a conversation that clears itself
 * after `idleSeconds` without interaction (from `GET /kiosk/config`, or `?idle=N` for tests).
 *
 *   touch / key / answer text ─► lastActivity = now
 *   every 0.5 s: conversation not empty, nothing streaming, now − lastActivity ≥ idle ─► reset
 */
import { css, html, LitElement, nothing } from 'lit';
import { repeat } from 'lit/directives/repeat.js';
import { DEFAULT_SETTINGS, newId, type StoredAttachment, type StoredMessage } from '../chat/store.ts';
import { buildRequest, runTurn } from '../chat/turn.ts';
import { type ServerEngine, openServerEngine } from '../engine/server-engine.ts';
import { CameraUnavailableError, hasCamera } from '../ui/camera-capture.ts';
import '../ui/camera-capture.ts';
import '../ui/chat-message.ts';
import { icon } from '../ui/icons.ts';
import { baseStyles } from '../ui/theme.ts';

const KIOSK_QUESTION = 'What is this?';

/** The idle reset in seconds: `?idle=N` wins, then `GET /kiosk/config`, then 120. */
export async function kioskIdleSeconds(search = location.search): Promise<number> {
  const q = Number(new URLSearchParams(search).get('idle'));
  if (Number.isFinite(q) && q > 0) return q;
  try {
    const res = await fetch('/kiosk/config', { cache: 'no-store' });
    if (res.ok) {
      const j = (await res.json()) as { idleSeconds?: unknown };
      if (typeof j.idleSeconds === 'number' && j.idleSeconds > 0) return j.idleSeconds;
    }
  } catch {
    // the default below
  }
  return 120;
}

export class KioskPageElement extends LitElement {
  static override properties = {
    messages: { state: true },
    streamingId: { state: true },
    problem: { state: true },
    text: { state: true },
    idleSeconds: { state: true },
    ready: { state: true },
  };
  declare messages: StoredMessage[];
  declare streamingId: string;
  declare problem: string;
  declare text: string;
  declare idleSeconds: number;
  declare ready: boolean;

  private engine: ServerEngine | null = null;
  private abort: AbortController | null = null;
  private lastActivity = Date.now();
  private timer: ReturnType<typeof setInterval> | undefined;
  private readonly touch = () => {
    this.lastActivity = Date.now();
  };

  constructor() {
    super();
    this.messages = [];
    this.streamingId = '';
    this.problem = '';
    this.text = '';
    this.idleSeconds = 120;
    this.ready = false;
  }

  static override styles = [
    baseStyles,
    css`
      :host {
        display: grid;
        grid-template-rows: auto minmax(0, 1fr) auto;
        height: 100dvh;
        font-size: 1.5rem;
        background: var(--bg, #f6f7f9);
        user-select: none;
      }
      header {
        display: flex;
        align-items: center;
        gap: 1rem;
        padding: 1rem 1.5rem;
        background: var(--surface, #fff);
        border-bottom: 1px solid var(--border-soft, #e1e6eb);
      }
      h1 {
        margin: 0;
        font-size: 2rem;
        flex: 1;
      }
      button {
        font-size: 1.5rem;
        min-height: 3.5rem;
        padding: 0.5rem 1.2rem;
        border-radius: 14px;
      }
      .messages {
        overflow-y: auto;
        padding: 1rem 1.5rem;
      }
      .inner {
        max-width: 60rem;
        margin: 0 auto;
      }
      .hero {
        display: grid;
        place-items: center;
        gap: 1rem;
        text-align: center;
        margin-top: 8vh;
      }
      .big {
        font-size: 2.4rem;
        font-weight: 700;
        min-height: 7rem;
        padding: 1rem 2.5rem;
        border-radius: 24px;
      }
      .hint {
        color: var(--muted, #57606a);
        font-size: 1.2rem;
      }
      footer {
        padding: 0.8rem 1.5rem 1.2rem;
        background: var(--surface, #fff);
        border-top: 1px solid var(--border-soft, #e1e6eb);
      }
      form {
        display: flex;
        gap: 0.8rem;
        max-width: 60rem;
        margin: 0 auto;
      }
      input[type='text'] {
        flex: 1;
        font-size: 1.5rem;
        min-height: 3.5rem;
        border-radius: 14px;
        padding: 0.4rem 1rem;
        min-width: 0;
        user-select: text;
      }
      input[type='file'] {
        position: absolute;
        width: 1px;
        height: 1px;
        opacity: 0;
      }
      .problem {
        text-align: center;
        font-size: 1.2rem;
      }
      @media (max-width: 600px) {
        :host {
          font-size: 1.2rem;
        }
        .big {
          font-size: 1.8rem;
        }
        button,
        input[type='text'] {
          font-size: 1.2rem;
        }
      }
    `,
  ];

  override connectedCallback(): void {
    super.connectedCallback();
    for (const ev of ['pointerdown', 'keydown', 'input', 'wheel', 'touchstart']) window.addEventListener(ev, this.touch, { passive: true });
    window.addEventListener('contextmenu', this.noMenu);
    this.timer = setInterval(() => this.checkIdle(), 500);
    void this.start();
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    for (const ev of ['pointerdown', 'keydown', 'input', 'wheel', 'touchstart']) window.removeEventListener(ev, this.touch);
    window.removeEventListener('contextmenu', this.noMenu);
    clearInterval(this.timer);
    this.abort?.abort();
  }

  private readonly noMenu = (e: Event) => e.preventDefault();

  private async start(): Promise<void> {
    this.idleSeconds = await kioskIdleSeconds();
    try {
      this.engine = await openServerEngine({});
      this.ready = true;
    } catch (e) {
      this.problem = `The assistant is not available: ${(e as Error).message}`;
    }
  }

  private checkIdle(): void {
    if (this.streamingId || this.messages.length === 0) return;
    if (Date.now() - this.lastActivity >= this.idleSeconds * 1000) this.reset();
  }

  /** Clears the conversation (idle timeout or "Start over"). */
  reset(): void {
    this.abort?.abort();
    this.messages = [];
    this.text = '';
    this.problem = '';
    this.dispatchEvent(new CustomEvent('kiosk-reset', { bubbles: true, composed: true }));
  }

  private async whatIsThis(): Promise<void> {
    const picker = () => this.renderRoot.querySelector<HTMLInputElement>('#photo')!.click();
    if (!(await hasCamera())) return picker();
    try {
      const blob = await this.renderRoot.querySelector('vlmesh-camera-capture')!.capture();
      if (blob) await this.ask(KIOSK_QUESTION, [{ kind: 'image', name: 'photo.png', mimeType: 'image/png', data: blob }]);
    } catch (e) {
      if (e instanceof CameraUnavailableError) picker();
      else this.problem = (e as Error).message;
    }
  }

  private async onPhoto(e: Event): Promise<void> {
    const input = e.target as HTMLInputElement;
    const f = input.files?.[0];
    input.value = '';
    if (!f) return;
    if (!f.type.startsWith('image/')) {
      this.problem = 'Please choose a photo.';
      return;
    }
    await this.ask(KIOSK_QUESTION, [{ kind: 'image', name: f.name, mimeType: f.type, data: f }]);
  }

  private async ask(text: string, attachments: StoredAttachment[] = []): Promise<void> {
    if (!this.engine || this.streamingId) return;
    this.touch();
    this.problem = '';
    const user: StoredMessage = { id: newId(), role: 'user', text, attachments };
    const reply: StoredMessage = { id: newId(), role: 'assistant', text: '' };
    const history = [...this.messages, user];
    this.messages = [...history, reply];
    this.streamingId = reply.id;
    const abort = new AbortController();
    this.abort = abort;
    const set = (patch: Partial<StoredMessage>) => {
      this.messages = this.messages.map((m) => (m.id === reply.id ? { ...m, ...patch } : m));
    };
    try {
      const request = await buildRequest({ history, settings: DEFAULT_SETTINGS, autoMaxTokens: true, signal: abort.signal });
      const { text: answer, meta } = await runTurn({
        engine: this.engine,
        engineLabel: `Server · ${this.engine.modelId}`,
        request,
        onText: (t) => {
          this.touch();
          set({ text: t });
        },
      });
      set({ text: answer, meta });
    } catch (e) {
      set({ meta: { engine: 'server', ttftS: 0, tokensPerS: 0, completionTokens: 0, finishReason: 'error', error: (e as Error).message } });
    } finally {
      if (this.abort === abort) this.abort = null;
      this.streamingId = '';
      this.touch();
    }
  }

  private submit(e: Event): void {
    e.preventDefault();
    const t = this.text.trim();
    if (!t) return;
    this.text = '';
    void this.ask(t);
  }

  protected override updated(): void {
    const box = this.renderRoot.querySelector('.messages');
    if (box && this.streamingId) box.scrollTop = box.scrollHeight;
  }

  override render() {
    const idle = this.idleSeconds >= 60 ? `${Math.round(this.idleSeconds / 60)} min` : `${this.idleSeconds} s`;
    return html`
      <header>
        <h1>Ask the assistant</h1>
        <button type="button" class="primary" ?disabled=${!this.ready || Boolean(this.streamingId)} @click=${this.whatIsThis}>${icon('camera')} What is this?</button>
        ${this.messages.length ? html`<button type="button" @click=${() => this.reset()}>Start over</button>` : nothing}
      </header>
      <section class="messages" aria-label="Conversation" aria-live="polite" aria-busy=${this.streamingId ? 'true' : 'false'}>
        <div class="inner">
          ${this.messages.length === 0
            ? html`<div class="hero">
                <button type="button" class="primary big" ?disabled=${!this.ready} @click=${this.whatIsThis}>${icon('camera')} What is this?</button>
                <p class="hint">Show something to the camera, or type a question below.</p>
              </div>`
            : repeat(
                this.messages,
                (m) => m.id,
                (m) => html`<vlmesh-chat-message large .message=${m} state=${m.id === this.streamingId ? 'streaming' : m.meta?.error ? 'error' : 'done'}></vlmesh-chat-message>`,
              )}
          ${this.problem ? html`<p class="problem error" role="alert">${this.problem}</p>` : nothing}
        </div>
      </section>
      <footer>
        <form @submit=${this.submit}>
          <label class="visually-hidden" for="q">Your question</label>
          <input id="q" type="text" autocomplete="off" placeholder="Type a question…" .value=${this.text} @input=${(e: Event) => (this.text = (e.target as HTMLInputElement).value)} />
          <button type="submit" class="primary" ?disabled=${!this.ready || Boolean(this.streamingId) || !this.text.trim()}>Ask</button>
        </form>
        <p class="hint" style="text-align:center;margin:0.4rem 0 0">This screen clears itself after ${idle} without use.</p>
        <input id="photo" type="file" accept="image/*" capture="environment" aria-label="Photo for “What is this?”" @change=${this.onPhoto} />
      </footer>
      <vlmesh-camera-capture large></vlmesh-camera-capture>
    `;
  }
}

customElements.define('vlmesh-kiosk-page', KioskPageElement);

declare global {
  interface HTMLElementTagNameMap {
    'vlmesh-kiosk-page': KioskPageElement;
  }
}
