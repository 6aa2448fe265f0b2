// `#fixtures` resolves to fixtures-node.ts (gpu project) or fixtures-browser.ts (browser project).
declare module '#fixtures' {
  export function fixtureBytes(path: string): Promise<Uint8Array>;
  export function fixtureJson<T = unknown>(path: string): Promise<T>;
}
