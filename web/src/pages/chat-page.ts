/**
 * `<vlmesh-chat-page>`: the chat app at `/`. A sidebar of saved conversations (IndexedDB), the
 * current conversation, the composer, settings, the engine picker and the speed line.
 *
 *   send ─► user message saved ─► buildRequest (history + settings) ─► engine.stream ─► answer
 *        streamed into the last message ─► saved with its speed (engine, TTFT, tokens/s)
 *
 * Keyboard: Enter sends, Shift+Enter adds a line (composer), Esc stops the answer anywhere on the
 * page. Below 760 px the sidebar becomes a drawer behind a "Chats" button.
 */
import { css, html, LitElement, nothing } from 'lit';
import { repeat } from 'lit/directives/repeat.js';
import {
  type ChatSettings,
  type Conversation,
  ConversationStore,
  type EngineKind,
  loadEngineKind,
  loadSettings,
  newId,
  type StoredMessage,
  saveEngineKind,
  saveSettings,
  titleFrom,
} from '../chat/store.ts';
import { buildRequest, runTurn } from '../chat/turn.ts';
import { sampleVideoFrames } from '../chat/video-frames.ts';
import { EngineManager, type EngineStatus } from '../engine/engine-manager.ts';
import '../ui/chat-message.ts';
import '../ui/composer.ts';
import type { ComposerSendDetail } from '../ui/composer.ts';
import '../ui/conversation-list.ts';
import '../ui/engine-picker.ts';
import '../ui/load-progress.ts';
import '../ui/settings-dialog.ts';
import '../ui/speed-line.ts';
import { icon } from '../ui/icons.ts';
import { baseStyles } from '../ui/theme.ts';
import { fetchWebConfig, type WebConfig } from '../web-config.ts';

export class ChatPageElement extends LitElement {
  static override properties = {
    conversations: { state: true },
    current: { state: true },
    settings: { state: true },
    engineKind: { state: true },
    engineStatus: { state: true },
    streamingId: { state: true },
    lastSpeed: { state: true },
    drawerOpen: { state: true },
  };
  declare conversations: Conversation[];
  declare current: Conversation | null;
  declare settings: ChatSettings;
  declare engineKind: EngineKind;
  declare engineStatus: EngineStatus;
  /** Id of the answer being streamed, or ''. */
  declare streamingId: string;
  declare lastSpeed: { ttftS: number | null; tokensPerS: number | null };
  declare drawerOpen: boolean;

  private readonly store = new ConversationStore();
  private manager: EngineManager | null = null;
  private abort: AbortController | null = null;
  private config: WebConfig | null = null;
  private readonly onKey = (e: KeyboardEvent) => {
    if (e.key !== 'Escape') return;
    if (this.streamingId) {
      e.preventDefault();
      this.stop();
    } else if (this.drawerOpen) {
      this.toggleDrawer(false);
    }
  };

  constructor() {
    super();
    this.conversations = [];
    this.current = null;
    this.settings = loadSettings();
    this.engineKind = loadEngineKind();
    this.engineStatus = { state: 'connecting', kind: this.engineKind };
    this.streamingId = '';
    this.lastSpeed = { ttftS: null, tokensPerS: null };
    this.drawerOpen = false;
  }

  static override styles = [
    baseStyles,
    css`
      :host {
        display: grid;
        grid-template-columns: 17rem minmax(0, 1fr);
        height: 100dvh;
        background: var(--bg, #f6f7f9);
      }
      aside {
        display: flex;
        flex-direction: column;
        gap: 0.75rem;
        padding: 0.9rem;
        border-right: 1px solid var(--border-soft, #e1e6eb);
        background: var(--sidebar, #eef1f5);
        min-height: 0;
      }
      aside vlmesh-conversation-list {
        flex: 1;
        min-height: 0;
      }
      aside .links {
        display: flex;
        gap: 0.8rem;
        font-size: 0.85rem;
      }
      aside a {
        color: var(--link, #1d4ed8);
      }
      .brand {
        font-weight: 700;
        font-size: 1.15rem;
        margin: 0;
      }
      main {
        display: grid;
        grid-template-rows: auto auto minmax(0, 1fr) auto;
        min-height: 0;
        min-width: 0;
      }
      header {
        display: flex;
        align-items: center;
        gap: 0.6rem;
        padding: 0.6rem 1rem;
        border-bottom: 1px solid var(--border-soft, #e1e6eb);
        background: var(--surface, #fff);
        flex-wrap: wrap;
      }
      header h1 {
        font-size: 1.05rem;
        margin: 0;
        flex: 1;
        min-width: 0;
        overflow: hidden;
        text-overflow: ellipsis;
        white-space: nowrap;
      }
      .menu {
        display: none;
      }
      .banners {
        padding: 0 1rem;
      }
      .banner {
        margin: 0.6rem 0 0;
        border-radius: 10px;
        padding: 0.6rem 0.8rem;
        border: 1px solid var(--warn-border, #e7c66b);
        background: var(--warn-bg, #fff8e1);
        display: flex;
        gap: 0.6rem;
        align-items: center;
        flex-wrap: wrap;
      }
      .banner p {
        margin: 0;
        flex: 1;
        min-width: 12rem;
      }
      .banner.bad {
        border-color: var(--danger-border, #f1b2ad);
        background: var(--danger-bg, #fdecea);
      }
      vlmesh-load-progress {
        margin-top: 0.6rem;
      }
      .messages {
        overflow-y: auto;
        padding: 0.5rem 1rem 1rem;
      }
      .messages-inner {
        max-width: 52rem;
        margin: 0 auto;
      }
      .welcome {
        max-width: 34rem;
        margin: 12vh auto 0;
        text-align: center;
        color: var(--muted, #57606a);
      }
      .welcome h2 {
        color: var(--fg, #1b1f24);
        font-size: 1.4rem;
      }
      footer {
        padding: 0.5rem 1rem 0.8rem;
        background: linear-gradient(transparent, var(--bg, #f6f7f9) 30%);
      }
      footer > * {
        max-width: 52rem;
        margin-left: auto;
        margin-right: auto;
      }
      vlmesh-speed-line {
        margin-bottom: 0.35rem;
      }
      .scrim {
        display: none;
      }
      @media (max-width: 760px) {
        :host {
          grid-template-columns: minmax(0, 1fr);
        }
        aside {
          position: fixed;
          inset: 0 auto 0 0;
          width: min(85vw, 20rem);
          z-index: 10;
          transform: translateX(-105%);
          transition: transform 0.2s ease;
          visibility: hidden;
          box-shadow: 0 0 30px rgb(0 0 0 / 0.25);
        }
        aside.open {
          transform: none;
          visibility: visible;
        }
        .scrim.open {
          display: block;
          position: fixed;
          inset: 0;
          background: rgb(0 0 0 / 0.35);
          z-index: 9;
        }
        .menu {
          display: inline-flex;
        }
        header {
          padding: 0.5rem 0.6rem;
          gap: 0.4rem;
        }
        .messages,
        footer {
          padding-left: 0.6rem;
          padding-right: 0.6rem;
        }
        .settings-label {
          position: absolute;
          width: 1px;
          height: 1px;
          overflow: hidden;
          clip: rect(0 0 0 0);
        }
      }
      @media (prefers-reduced-motion: reduce) {
        aside {
          transition: none;
        }
      }
    `,
  ];

  override connectedCallback(): void {
    super.connectedCallback();
    window.addEventListener('keydown', this.onKey);
    void this.start();
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    window.removeEventListener('keydown', this.onKey);
    this.abort?.abort();
  }

  private async start(): Promise<void> {
    this.config = await fetchWebConfig();
    this.manager = new EngineManager({ modelUrl: this.config.modelUrl, onChange: (s) => (this.engineStatus = s) });
    await this.refreshList();
    if (this.conversations[0] && !this.current) this.current = this.conversations[0];
    await this.manager.select(this.engineKind, { apiKey: this.settings.apiKey });
  }

  private async refreshList(): Promise<void> {
    try {
      this.conversations = await this.store.list();
    } catch {
      // IndexedDB unavailable (private mode in some browsers): the chat still works, unsaved.
      this.conversations = this.current ? [this.current] : [];
    }
  }

  private async save(c: Conversation): Promise<void> {
    try {
      await this.store.save(c);
    } catch {
      // See refreshList.
    }
    await this.refreshList();
  }

  private get engine() {
    return this.engineStatus.state === 'ready' ? this.engineStatus.engine : null;
  }

  private async pickEngine(kind: EngineKind): Promise<void> {
    this.engineKind = kind;
    saveEngineKind(kind);
    this.lastSpeed = { ttftS: null, tokensPerS: null };
    await this.manager?.select(kind, { apiKey: this.settings.apiKey });
  }

  private onSettings(s: ChatSettings): void {
    const keyChanged = s.apiKey !== this.settings.apiKey;
    this.settings = s;
    saveSettings(s);
    if (keyChanged && this.engineKind === 'server') void this.manager?.select('server', { apiKey: s.apiKey });
  }

  /** Opens or closes the conversation drawer (narrow screens), moving focus into or out of it. */
  private toggleDrawer(open: boolean): void {
    this.drawerOpen = open;
    void this.updateComplete.then(() => {
      if (open) this.renderRoot.querySelector('vlmesh-conversation-list')?.focus();
      else this.renderRoot.querySelector<HTMLButtonElement>('.menu')?.focus();
    });
  }

  private newConversation(): void {
    if (this.streamingId) this.stop();
    this.current = null;
    this.drawerOpen = false;
    this.lastSpeed = { ttftS: null, tokensPerS: null };
    void this.updateComplete.then(() => this.renderRoot.querySelector('vlmesh-composer')?.focus());
  }

  private async selectConversation(id: string): Promise<void> {
    if (this.streamingId) this.stop();
    this.current = this.conversations.find((c) => c.id === id) ?? (await this.store.get(id)) ?? null;
    this.drawerOpen = false;
  }

  private async deleteConversation(id: string): Promise<void> {
    const c = this.conversations.find((x) => x.id === id);
    if (!c || !confirm(`Delete “${c.title}”?`)) return;
    if (this.current?.id === id) {
      if (this.streamingId) this.stop();
      this.current = null;
    }
    try {
      await this.store.delete(id);
    } catch {
      // See refreshList.
    }
    await this.refreshList();
  }

  private stop(): void {
    this.abort?.abort();
  }

  private async send(d: ComposerSendDetail): Promise<void> {
    if (this.streamingId || !this.engine) return;
    const now = Date.now();
    const user: StoredMessage = { id: newId(), role: 'user', text: d.text, attachments: d.attachments };
    const conv: Conversation = this.current
      ? { ...this.current, messages: [...this.current.messages, user], updatedAt: now }
      : { id: newId(), title: titleFrom(d.text, d.attachments), createdAt: now, updatedAt: now, messages: [user] };
    this.current = conv;
    await this.save(conv);
    await this.answer(conv);
  }

  private async regenerate(): Promise<void> {
    const c = this.current;
    if (!c || this.streamingId || !this.engine) return;
    const last = c.messages[c.messages.length - 1];
    const messages = last?.role === 'assistant' ? c.messages.slice(0, -1) : c.messages;
    if (messages.length === 0) return;
    const conv = { ...c, messages, updatedAt: Date.now() };
    this.current = conv;
    await this.answer(conv);
  }

  /** Streams the answer to the last user turn of `conv` into a new assistant message. */
  private async answer(conv: Conversation): Promise<void> {
    const engine = this.engine;
    if (!engine || this.engineStatus.state !== 'ready') return;
    const label = this.engineStatus.label;
    const kind = this.engineStatus.kind;
    const reply: StoredMessage = { id: newId(), role: 'assistant', text: '' };
    const history = conv.messages;
    let current: Conversation = { ...conv, messages: [...history, reply] };
    this.current = current;
    this.streamingId = reply.id;
    this.lastSpeed = { ttftS: null, tokensPerS: null };
    const abort = new AbortController();
    this.abort = abort;
    const update = (patch: Partial<StoredMessage>) => {
      if (this.current?.id !== conv.id) return;
      const msgs = this.current.messages.map((m) => (m.id === reply.id ? { ...m, ...patch } : m));
      current = { ...this.current, messages: msgs };
      this.current = current;
    };
    let final: StoredMessage;
    try {
      const request = await buildRequest({
        history,
        settings: this.settings,
        sessionId: conv.id,
        signal: abort.signal,
        ...(kind === 'local' ? { sampleVideo: (b: Blob) => sampleVideoFrames(b) } : {}),
      });
      const { text, meta } = await runTurn({
        engine,
        engineLabel: label,
        request,
        onText: (t) => update({ text: t }),
        onFirstToken: (ttftS) => (this.lastSpeed = { ttftS, tokensPerS: null }),
      });
      final = { ...reply, text, meta };
      this.lastSpeed = { ttftS: meta.ttftS, tokensPerS: meta.tokensPerS };
    } catch (e) {
      const partial = current.messages.find((m) => m.id === reply.id)?.text ?? '';
      final = { ...reply, text: partial, meta: { engine: label, ttftS: 0, tokensPerS: 0, completionTokens: 0, finishReason: 'error', error: (e as Error).message } };
    } finally {
      this.abort = null;
      this.streamingId = '';
    }
    const saved: Conversation = { ...conv, messages: [...history, final], updatedAt: Date.now() };
    if (this.current?.id === conv.id) this.current = saved;
    await this.save(saved);
  }

  protected override updated(): void {
    // Keep the newest text in view while it streams (unless the user scrolled up to read).
    const box = this.renderRoot.querySelector('.messages');
    if (box && this.streamingId && box.scrollHeight - box.scrollTop - box.clientHeight < 160) box.scrollTop = box.scrollHeight;
  }

  private renderBanner() {
    const s = this.engineStatus;
    if (s.state === 'loading') return html`<vlmesh-load-progress .progress=${s.progress} @cancel=${() => this.manager?.cancelLoad()}></vlmesh-load-progress>`;
    if (s.state === 'unsupported') {
      return html`<div class="banner" role="alert">
        <p><strong>The local engine cannot run here.</strong> ${s.reason}</p>
        <button type="button" class="primary" @click=${() => this.pickEngine('server')}>Use the server engine</button>
      </div>`;
    }
    if (s.state === 'error') {
      return html`<div class="banner bad" role="alert">
        <p><strong>The ${s.kind} engine is not available.</strong> ${s.message}</p>
        <button type="button" @click=${() => this.pickEngine(s.kind)}>Retry</button>
      </div>`;
    }
    return nothing;
  }

  private statusText(): string {
    const s = this.engineStatus;
    if (this.streamingId) return 'answering…';
    switch (s.state) {
      case 'connecting':
        return s.kind === 'server' ? 'connecting…' : 'checking this browser…';
      case 'loading':
        return 'loading the model…';
      case 'ready':
        return this.lastSpeed.ttftS === null ? 'ready' : '';
      case 'unsupported':
        return 'not available';
      case 'error':
        return 'unavailable';
    }
  }

  override render() {
    const c = this.current;
    const messages = c?.messages ?? [];
    const lastAssistant = [...messages].reverse().find((m) => m.role === 'assistant');
    const s = this.engineStatus;
    const engineName = s.state === 'ready' ? s.label : this.engineKind === 'server' ? 'Server' : 'Local';
    return html`
      <div class="scrim ${this.drawerOpen ? 'open' : ''}" @click=${() => this.toggleDrawer(false)}></div>
      <aside class=${this.drawerOpen ? 'open' : ''} aria-label="Chats">
        <p class="brand">vlmesh</p>
        <vlmesh-conversation-list
          .conversations=${this.conversations}
          current-id=${c?.id ?? ''}
          @new-conversation=${this.newConversation}
          @select-conversation=${(e: CustomEvent<string>) => this.selectConversation(e.detail)}
          @delete-conversation=${(e: CustomEvent<string>) => this.deleteConversation(e.detail)}
        ></vlmesh-conversation-list>
        <div class="links"><a href="/donate">Donate this GPU</a><a href="/doctor">Adapter report</a></div>
      </aside>
      <main>
        <header>
          <button type="button" class="menu" aria-label="Show conversations" aria-expanded=${this.drawerOpen ? 'true' : 'false'} @click=${() => this.toggleDrawer(!this.drawerOpen)}>${icon('menu')}</button>
          <h1>${c?.title ?? 'New chat'}</h1>
          <vlmesh-engine-picker .value=${this.engineKind} ?disabled=${Boolean(this.streamingId)} @engine-change=${(e: CustomEvent<EngineKind>) => this.pickEngine(e.detail)}></vlmesh-engine-picker>
          <button type="button" aria-label="Settings" @click=${() => this.renderRoot.querySelector('vlmesh-settings-dialog')!.show()}>
            ${icon('settings')}<span class="settings-label">&nbsp;Settings</span>
          </button>
        </header>
        <div class="banners">${this.renderBanner()}</div>
        <section class="messages" aria-label="Conversation" aria-live="polite" aria-busy=${this.streamingId ? 'true' : 'false'}>
          <div class="messages-inner">
            ${messages.length === 0
              ? html`<div class="welcome">
                  <h2>What would you like to know?</h2>
                  <p>Type a question, attach or paste an image or a short video, or take a photo. Answers stream in as they are generated.</p>
                </div>`
              : repeat(
                  messages,
                  (m) => m.id,
                  (m) => html`<vlmesh-chat-message
                    .message=${m}
                    state=${m.id === this.streamingId ? 'streaming' : m.meta?.finishReason === 'error' ? 'error' : 'done'}
                    ?can-regenerate=${m === lastAssistant && !this.streamingId && Boolean(this.engine)}
                    @regenerate=${this.regenerate}
                  ></vlmesh-chat-message>`,
                )}
          </div>
        </section>
        <footer>
          <vlmesh-speed-line engine=${engineName} status=${this.statusText()} .ttftS=${this.lastSpeed.ttftS} .tokensPerS=${this.lastSpeed.tokensPerS}></vlmesh-speed-line>
          <vlmesh-composer
            ?busy=${Boolean(this.streamingId)}
            ?disabled=${!this.engine}
            @send=${(e: CustomEvent<ComposerSendDetail>) => this.send(e.detail)}
            @stop=${this.stop}
          ></vlmesh-composer>
        </footer>
      </main>
      <vlmesh-settings-dialog .settings=${this.settings} @settings-change=${(e: CustomEvent<ChatSettings>) => this.onSettings(e.detail)}></vlmesh-settings-dialog>
    `;
  }
}

customElements.define('vlmesh-chat-page', ChatPageElement);

declare global {
  interface HTMLElementTagNameMap {
    'vlmesh-chat-page': ChatPageElement;
  }
}
