/**
 * `vlmesh pull REPO_ID [--revision R] [--cache-dir D] [--endpoint URL] [--token T]`: downloads a
 * model repository from the Hugging Face Hub into the hub cache (shared with Python tools) and
 * prints its snapshot directory. A complete cached snapshot is reused without any request.
 */
import { stat } from 'node:fs/promises';
import { defaultCacheDir, defaultToken, isRepoId, type PullOptions, type PullProgress, pullModel } from '../io/hub.ts';
import { parse, UsageError } from './args.ts';

const MiB = 2 ** 20;
const fmtBytes = (n: number) =>
  n >= 2 ** 30 ? `${(n / 2 ** 30).toFixed(2)} GiB` : n >= MiB ? `${(n / MiB).toFixed(1)} MiB` : `${(n / 1024).toFixed(1)} KiB`;
const fmtTime = (s: number) => {
  if (!Number.isFinite(s)) return '--:--';
  const m = Math.floor(s / 60);
  return `${m}:${String(Math.floor(s % 60)).padStart(2, '0')}`;
};

/**
 * A progress reporter for a stream: a redrawn bar (bytes, speed, ETA for the file and the total)
 * on a TTY, otherwise a plain line every `intervalMs` and one when each file finishes.
 */
export function progressReporter(out: NodeJS.WriteStream | { write(s: string): unknown; isTTY?: boolean }, intervalMs = 5000): (p: PullProgress) => void {
  const start = Date.now();
  let fileStart = start;
  let fileName = '';
  let lastLine = 0;
  const tty = Boolean(out.isTTY);
  return (p) => {
    const now = Date.now();
    if (p.file !== fileName) {
      fileName = p.file;
      fileStart = now;
    }
    const speed = p.bytes / Math.max((now - start) / 1000, 1e-3);
    const fileSpeed = p.fileBytes / Math.max((now - fileStart) / 1000, 1e-3);
    const eta = (p.total - p.bytes) / speed;
    const fileEta = (p.fileTotal - p.fileBytes) / fileSpeed;
    const pct = p.total > 0 ? Math.min(100, (100 * p.bytes) / p.total) : 100;
    if (tty) {
      const width = 24;
      const fill = Math.round((pct / 100) * width);
      const bar = `[${'#'.repeat(fill)}${'.'.repeat(width - fill)}]`;
      const line =
        `${bar} ${pct.toFixed(0).padStart(3)}% ${fmtBytes(p.bytes)}/${fmtBytes(p.total)} ${fmtBytes(speed)}/s eta ${fmtTime(eta)}` +
        ` | ${p.file} ${fmtBytes(p.fileBytes)}/${fmtBytes(p.fileTotal)} ${fmtBytes(fileSpeed)}/s eta ${fmtTime(p.done ? 0 : fileEta)}`;
      out.write(`\r\x1b[2K${line}${p.done && p.bytes >= p.total ? '\n' : ''}`);
    } else if (p.done || now - lastLine >= intervalMs) {
      lastLine = now;
      out.write(
        `${p.done ? 'done' : 'downloading'} ${p.file}: ${fmtBytes(p.fileBytes)}/${fmtBytes(p.fileTotal)}; total ${fmtBytes(p.bytes)}/${fmtBytes(p.total)} (${pct.toFixed(0)}%, ${fmtBytes(speed)}/s, eta ${fmtTime(eta)})\n`,
      );
    }
  };
}

export interface ResolveModelOptions extends Omit<PullOptions, 'repo'> {}

/**
 * A model argument to a directory: an existing local directory is returned as is; a hub repo id
 * (`org/name`) is looked up in the hub cache and pulled when missing.
 */
export async function resolveModelPath(m: string, opts: ResolveModelOptions = {}): Promise<string> {
  const local = await stat(m).catch(() => null);
  if (local?.isDirectory()) return m;
  if (local) throw new UsageError(`--model "${m}" is a file; pass the model directory or a hub repo id (org/name)`);
  if (!isRepoId(m)) throw new UsageError(`--model "${m}" is neither a directory nor a hub repo id (org/name)`);
  const r = await pullModel({ token: defaultToken(), ...opts, repo: m });
  return r.snapshotDir;
}

export async function pullCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(
    argv,
    {
      revision: { type: 'string' },
      'cache-dir': { type: 'string' },
      endpoint: { type: 'string' },
      token: { type: 'string' },
    },
    true,
  );
  if (positionals.length !== 1) throw new UsageError('usage: vlmesh pull REPO_ID [--revision R] [--cache-dir D] [--endpoint URL] [--token T]');
  const repo = positionals[0];
  if (!isRepoId(repo)) throw new UsageError(`"${repo}" is not a hub repo id (expected ORG/NAME, e.g. Qwen/Qwen3-VL-2B-Instruct)`);
  const controller = new AbortController();
  const onSigint = () => controller.abort(new Error('interrupted'));
  process.once('SIGINT', onSigint);
  try {
    const r = await pullModel({
      repo,
      revision: values.revision,
      cacheDir: values['cache-dir'] ?? defaultCacheDir(),
      endpoint: values.endpoint,
      token: values.token ?? defaultToken(),
      onProgress: progressReporter(process.stderr),
      signal: controller.signal,
    });
    if (r.cached) process.stderr.write(`${repo}: using the cached snapshot ${r.commit}\n`);
    else process.stderr.write(`${repo}@${r.commit}: ${r.downloaded.length} file(s) downloaded\n`);
    process.stdout.write(`${r.snapshotDir}\n`);
    return 0;
  } catch (e) {
    if (!controller.signal.aborted) throw e;
    process.stderr.write(`\nvlmesh pull: interrupted; run the same command again to resume\n`);
    return 130;
  } finally {
    process.off('SIGINT', onSigint);
  }
}
