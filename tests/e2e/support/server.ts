/**
 * `vlmesh serve` for the end-to-end specs: started on port 0 in `beforeAll`, stopped in
 * `afterAll`, with helpers to call its API directly (to compare what the page shows).
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { type Served, startServe, stopServe } from '../../support/serve.ts';

/** The tiny real-vocabulary checkpoint (f32 weights). */
export const TINY_MODEL = fileURLToPath(new URL('../../fixtures/golden/realvocab', import.meta.url));
/** The image the chat and kiosk specs attach. */
export const IMAGE_A = fileURLToPath(new URL('../../fixtures/golden/e2e/img_a_256x320.png', import.meta.url));
/** Where the specs write their screenshots. */
export const SCREENSHOTS = fileURLToPath(new URL('../screenshots/', import.meta.url));

export interface E2eServer {
  /** Base URL ending in '/'. */
  url: string;
  stop(): Promise<void>;
  stderr(): string;
}

/**
 * Starts `vlmesh serve --host 127.0.0.1 --port 0 ...args`.
 *
 * @example
 * const s = await startE2eServer(['--model', TINY_MODEL, '--dtype', 'f32']);
 */
export async function startE2eServer(args: string[]): Promise<E2eServer> {
  const served: Served = await startServe(args);
  return { url: served.url, stderr: served.stderr, stop: () => stopServe(served.p) };
}

/** A data: URL of a file. */
export function fileDataUrl(path: string, mimeType: string): string {
  return `data:${mimeType};base64,${readFileSync(path).toString('base64')}`;
}

/** The assistant's text for a non-streaming chat completion. */
export async function chatCompletion(url: string, body: Record<string, unknown>): Promise<string> {
  const res = await fetch(`${url}v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const json = (await res.json()) as { choices?: { message: { content: string } }[]; error?: { message: string } };
  if (!res.ok || !json.choices) throw new Error(`chat completion failed: ${res.status} ${json.error?.message}`);
  return json.choices[0]!.message.content;
}
