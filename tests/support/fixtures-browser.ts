/** Test fixtures in the browser project: fetched from the Vitest server (project root). */
async function get(path: string): Promise<Response> {
  const r = await fetch(`/tests/fixtures/${path}`);
  if (!r.ok) throw new Error(`fixture ${path}: HTTP ${r.status}`);
  return r;
}

export async function fixtureBytes(path: string): Promise<Uint8Array> {
  return new Uint8Array(await (await get(path)).arrayBuffer());
}

export async function fixtureJson<T = unknown>(path: string): Promise<T> {
  return (await (await get(path)).json()) as T;
}
