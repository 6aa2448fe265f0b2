/** Starts `vlmesh serve` as a child process for API tests (port 0; the URL is read from stdout). */
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const bin = fileURLToPath(new URL('../../edge-node/bin/vlmesh.mjs', import.meta.url));

export interface Served {
  p: ChildProcess;
  /** Base URL ending in '/'. */
  url: string;
  /** Everything the server wrote on stderr so far. */
  stderr: () => string;
}

export function startServe(args: string[]): Promise<Served> {
  const p = spawn(process.execPath, [bin, 'serve', '--host', '127.0.0.1', '--port', '0', ...args]);
  let out = '';
  let err = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve did not start: ${out}${err}`)), 30_000);
    p.stderr?.on('data', (d) => (err += d));
    p.stdout?.on('data', (d) => {
      out += d;
      const m = /http:\/\/[\d.]+:\d+\//.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({ p, url: m[0], stderr: () => err });
      }
    });
    p.on('exit', (code) => reject(new Error(`serve exited with ${code}: ${out}${err}`)));
  });
}

export async function stopServe(p: ChildProcess | undefined): Promise<void> {
  if (!p || p.exitCode !== null) return;
  const closed = new Promise((r) => p.on('close', r));
  p.kill('SIGTERM');
  await closed;
}
