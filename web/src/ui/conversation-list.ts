/**
 * `<vlmesh-conversation-list>`: the saved conversations, newest first, with New chat and a
 * Delete button per conversation. The current one is marked `aria-current`.
 *
 * @fires new-conversation - the user wants an empty conversation
 * @fires select-conversation - CustomEvent<string> with the id picked
 * @fires delete-conversation - CustomEvent<string> with the id to delete
 */
import { css, html, LitElement } from 'lit';
import type { Conversation } from '../chat/store.ts';
import { icon } from './icons.ts';
import { baseStyles } from './theme.ts';

export class ConversationListElement extends LitElement {
  static override properties = { conversations: { attribute: false }, currentId: { attribute: 'current-id' } };
  declare conversations: Pick<Conversation, 'id' | 'title' | 'updatedAt'>[];
  declare currentId: string;

  constructor() {
    super();
    this.conversations = [];
    this.currentId = '';
  }

  static override styles = [
    baseStyles,
    css`
      :host {
        display: flex;
        flex-direction: column;
        gap: 0.5rem;
        min-height: 0;
      }
      ul {
        list-style: none;
        margin: 0;
        padding: 0;
        overflow-y: auto;
        display: grid;
        gap: 0.2rem;
      }
      li {
        display: flex;
        align-items: stretch;
        gap: 0.2rem;
      }
      .open {
        flex: 1;
        text-align: left;
        border-color: transparent;
        background: transparent;
        overflow: hidden;
        text-overflow: ellipsis;
        white-space: nowrap;
        min-width: 0;
      }
      .open[aria-current='true'] {
        background: var(--selected, #dbe5fb);
        font-weight: 600;
      }
      .del {
        border-color: transparent;
        background: transparent;
        padding: 0 0.5rem;
        color: var(--muted, #57606a);
      }
      .empty {
        color: var(--muted, #57606a);
        font-size: 0.9rem;
        padding: 0 0.4rem;
      }
    `,
  ];

  /** Focuses the New chat button. */
  override focus(): void {
    this.renderRoot.querySelector('button')?.focus();
  }

  private fire(name: string, detail?: string): void {
    this.dispatchEvent(new CustomEvent(name, { detail, bubbles: true, composed: true }));
  }

  override render() {
    return html`
      <button type="button" class="primary" @click=${() => this.fire('new-conversation')}>+ New chat</button>
      <nav aria-label="Conversations">
        ${this.conversations.length === 0
          ? html`<p class="empty">No conversations yet.</p>`
          : html`<ul>
              ${this.conversations.map(
                (c) => html`<li>
                  <button type="button" class="open" aria-current=${c.id === this.currentId ? 'true' : 'false'} title=${c.title} @click=${() => this.fire('select-conversation', c.id)}>
                    ${c.title}
                  </button>
                  <button type="button" class="del" aria-label=${`Delete conversation “${c.title}”`} @click=${() => this.fire('delete-conversation', c.id)}>${icon('trash')}</button>
                </li>`,
              )}
            </ul>`}
      </nav>
    `;
  }
}

customElements.define('vlmesh-conversation-list', ConversationListElement);

declare global {
  interface HTMLElementTagNameMap {
    'vlmesh-conversation-list': ConversationListElement;
  }
}
