/** The e2e golden cases (tests/fixtures/golden/e2e) as engine requests, for Node tests. */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { GenerationRequest } from '../../shared/engine/engine.ts';
import type { ChatMessage } from '../../shared/text/chat-template.ts';

export const goldenDir = fileURLToPath(new URL('../fixtures/golden/', import.meta.url));

export interface E2eCase {
  case: string;
  messages: { role: string; content: string | { type: string; text?: string; image?: string }[] }[];
  generated_ids: { data: number[] };
}

/** Reads `e2e/<name>.json`. */
export function loadE2eCase(name: string): E2eCase {
  return JSON.parse(readFileSync(`${goldenDir}e2e/${name}.json`, 'utf8')) as E2eCase;
}

/** A case as a greedy engine request (image files read from the fixtures). */
export function e2eRequest(c: E2eCase, extra: Partial<GenerationRequest> = {}, maxTokens = 8): GenerationRequest {
  const images: GenerationRequest['images'] = [];
  const messages: ChatMessage[] = c.messages.map((m) => ({
    role: m.role,
    content:
      typeof m.content === 'string'
        ? m.content
        : m.content.map((p) => {
            if (p.type !== 'image') return { type: 'text', text: p.text ?? '' };
            images.push({ bytes: new Uint8Array(readFileSync(`${goldenDir}e2e/${p.image}`)) });
            return { type: 'image' };
          }),
  }));
  return { id: c.case, messages, images, sampling: { maxTokens, temperature: 0, topP: 1, topK: 0 }, ...extra };
}
