/**
 * Conversations kept in IndexedDB (through idb-keyval), so they survive a reload: one record per
 * conversation under its id, attachments stored as Blobs. Settings live in localStorage (small,
 * read synchronously at start).
 */
import { createStore, del, get, set, values } from 'idb-keyval';

/** An image or video attached to a user message. */
export interface StoredAttachment {
  kind: 'image' | 'video';
  name: string;
  mimeType: string;
  data: Blob;
}

/** How an answer was produced. */
export interface AnswerMeta {
  engine: string;
  ttftS: number;
  tokensPerS: number;
  completionTokens: number;
  finishReason: 'stop' | 'length' | 'abort' | 'error';
  error?: string;
}

export interface StoredMessage {
  id: string;
  role: 'user' | 'assistant';
  text: string;
  attachments?: StoredAttachment[];
  meta?: AnswerMeta;
}

export interface Conversation {
  id: string;
  title: string;
  createdAt: number;
  updatedAt: number;
  messages: StoredMessage[];
}

/** The user's generation settings. */
export interface ChatSettings {
  systemPrompt: string;
  temperature: number;
  maxTokens: number;
  /** Bearer key for a node started with --api-key ('' = none). */
  apiKey: string;
}

export const DEFAULT_SETTINGS: ChatSettings = { systemPrompt: '', temperature: 0.7, maxTokens: 512, apiKey: '' };

const SETTINGS_KEY = 'vlmesh.settings';
const ENGINE_KEY = 'vlmesh.engine';

/** A short unique id. */
export function newId(): string {
  return typeof crypto !== 'undefined' && 'randomUUID' in crypto ? crypto.randomUUID() : `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
}

/**
 * The conversation store of one origin.
 *
 * @example
 * const store = new ConversationStore();
 * await store.save(conversation);
 * const all = await store.list(); // newest first
 */
export class ConversationStore {
  private readonly store = createStore('vlmesh-chat', 'conversations');

  /** Every conversation, most recently updated first. */
  async list(): Promise<Conversation[]> {
    const all = (await values<Conversation>(this.store)).filter((c) => c && typeof c.id === 'string' && Array.isArray(c.messages));
    return all.sort((a, b) => b.updatedAt - a.updatedAt);
  }

  get(id: string): Promise<Conversation | undefined> {
    return get<Conversation>(id, this.store);
  }

  save(c: Conversation): Promise<void> {
    return set(c.id, c, this.store);
  }

  delete(id: string): Promise<void> {
    return del(id, this.store);
  }
}

/** Settings from localStorage, each field checked (defaults for anything missing or odd). */
export function loadSettings(): ChatSettings {
  try {
    const raw = JSON.parse(localStorage.getItem(SETTINGS_KEY) ?? '{}') as Partial<Record<keyof ChatSettings, unknown>>;
    return {
      systemPrompt: typeof raw.systemPrompt === 'string' ? raw.systemPrompt : DEFAULT_SETTINGS.systemPrompt,
      temperature: typeof raw.temperature === 'number' && raw.temperature >= 0 && raw.temperature <= 2 ? raw.temperature : DEFAULT_SETTINGS.temperature,
      maxTokens: typeof raw.maxTokens === 'number' && Number.isInteger(raw.maxTokens) && raw.maxTokens > 0 ? raw.maxTokens : DEFAULT_SETTINGS.maxTokens,
      apiKey: typeof raw.apiKey === 'string' ? raw.apiKey : DEFAULT_SETTINGS.apiKey,
    };
  } catch {
    return { ...DEFAULT_SETTINGS };
  }
}

export function saveSettings(s: ChatSettings): void {
  localStorage.setItem(SETTINGS_KEY, JSON.stringify(s));
}

export type EngineKind = 'server' | 'local';

export function loadEngineKind(): EngineKind {
  try {
    return localStorage.getItem(ENGINE_KEY) === 'local' ? 'local' : 'server';
  } catch {
    return 'server';
  }
}

export function saveEngineKind(k: EngineKind): void {
  localStorage.setItem(ENGINE_KEY, k);
}

/** A title from the first user message: its first line, at most 48 characters. */
export function titleFrom(text: string, attachments: readonly StoredAttachment[] = []): string {
  const line = text.trim().split('\n')[0]?.trim() ?? '';
  if (line) return line.length > 48 ? `${line.slice(0, 47)}…` : line;
  if (attachments.length) return attachments[0]!.kind === 'video' ? 'Video' : 'Image';
  return 'New chat';
}
