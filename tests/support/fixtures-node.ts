/** Test fixtures in Node: read from tests/fixtures on disk. */
import { readFile } from 'node:fs/promises';

const root = new URL('../fixtures/', import.meta.url);

export async function fixtureBytes(path: string): Promise<Uint8Array> {
  return new Uint8Array(await readFile(new URL(path, root)));
}

export async function fixtureJson<T = unknown>(path: string): Promise<T> {
  return JSON.parse(await readFile(new URL(path, root), 'utf8')) as T;
}
