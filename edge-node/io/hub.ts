/**
 * Downloads a model repository from the Hugging Face Hub into the hub's own cache layout, so a
 * cache filled by Python tools (`~/.cache/huggingface/hub`) is reused and vice versa:
 *
 *   <cache>/models--ORG--NAME/
 *     refs/main                      the commit the branch pointed at
 *     blobs/<etag>                   file contents, named by sha256 (LFS) or git blob sha1
 *     blobs/<etag>.incomplete        a download in progress (resumed with a Range request)
 *     snapshots/<commit>/<file>      relative symlinks into blobs/ (copies where links fail)
 *
 * Snapshot entries are linked only after every file has been downloaded and verified, so a
 * failed pull never leaves a half-populated snapshot behind.
 */
import { createHash, type Hash } from 'node:crypto';
import { createReadStream, existsSync, readFileSync } from 'node:fs';
import { copyFile, mkdir, open, readFile, rename, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { VlmeshError } from '../../shared/errors.ts';

export const DEFAULT_ENDPOINT = 'https://huggingface.co';

/** The files vlmesh needs from a Qwen3-VL repository (weights are added from the listing). */
export const MODEL_FILES = [
  'config.json',
  'generation_config.json',
  'tokenizer.json',
  'tokenizer_config.json',
  'chat_template.json',
  'preprocessor_config.json',
  'video_preprocessor_config.json',
];
const SINGLE_WEIGHTS = 'model.safetensors';
const WEIGHTS_INDEX = 'model.safetensors.index.json';

export type DownloadErrorCode =
  | 'HUB_AUTH'
  | 'HUB_NOT_FOUND'
  | 'HUB_NETWORK'
  | 'HUB_BAD_RESPONSE'
  | 'DOWNLOAD_SIZE_MISMATCH'
  | 'DOWNLOAD_CHECKSUM_MISMATCH';

/** A hub request or a download failed; `file` / `url` name what was being fetched. */
export class DownloadError extends VlmeshError {
  readonly file: string | undefined;
  readonly url: string | undefined;
  readonly status: number | undefined;
  constructor(code: DownloadErrorCode, message: string, o: { file?: string; url?: string; status?: number; cause?: unknown } = {}) {
    super(code, message, { cause: o.cause });
    this.file = o.file;
    this.url = o.url;
    this.status = o.status;
  }
}

/** One progress report: the current file and the running totals over the whole pull. */
export interface PullProgress {
  file: string;
  fileBytes: number;
  fileTotal: number;
  bytes: number;
  total: number;
  /** True on the last report for a file. */
  done: boolean;
}

export interface PullOptions {
  /** `org/name` (or a legacy single-name repo). */
  repo: string;
  /** Branch, tag or commit; default `main`. */
  revision?: string;
  /** Hub base URL; default `$HF_ENDPOINT` or https://huggingface.co. */
  endpoint?: string;
  /** Hub cache root; default {@link defaultCacheDir}. */
  cacheDir?: string;
  token?: string;
  /** Exact files to fetch instead of the default model set. */
  files?: string[];
  onProgress?: (p: PullProgress) => void;
  signal?: AbortSignal;
  fetchImpl?: typeof fetch;
  /** Retries per request for 5xx, 429 and connection failures; default 3. */
  retries?: number;
  /** First backoff delay (doubled per retry); default 500 ms. */
  retryDelayMs?: number;
}

export interface PullResult {
  snapshotDir: string;
  commit: string;
  /** Files whose bytes were (at least partly) transferred by this pull. */
  downloaded: string[];
  /** True when the cached snapshot was complete and no request was made. */
  cached: boolean;
}

/** `$HF_HUB_CACHE`, else `$HF_HOME/hub`, else `~/.cache/huggingface/hub`. */
export function defaultCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.HF_HUB_CACHE) return env.HF_HUB_CACHE;
  return join(env.HF_HOME ?? join(env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'huggingface'), 'hub');
}

/** `$HF_TOKEN`, else the token saved by `huggingface-cli login` (`$HF_HOME/token`), else none. */
export function defaultToken(env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (env.HF_TOKEN) return env.HF_TOKEN;
  if (env.HUGGING_FACE_HUB_TOKEN) return env.HUGGING_FACE_HUB_TOKEN;
  const file = env.HF_TOKEN_PATH ?? join(env.HF_HOME ?? join(homedir(), '.cache', 'huggingface'), 'token');
  try {
    return existsSync(file) ? readFileSync(file, 'utf8').trim() || undefined : undefined;
  } catch {
    return undefined;
  }
}

/** `<cache>/models--ORG--NAME` for a repo id. */
export function repoCacheDir(cacheDir: string, repo: string): string {
  return join(cacheDir, `models--${repo.split('/').join('--')}`);
}

const REPO_RE = /^(?:[\w.-]+\/)?[\w.-]+$/;
const COMMIT_RE = /^[0-9a-f]{40}$/;
const SHA256_RE = /^[0-9a-f]{64}$/;

/** Whether `s` looks like a hub repo id (`org/name`). */
export function isRepoId(s: string): boolean {
  return REPO_RE.test(s) && s.includes('/') && !s.startsWith('.') && !s.includes('..');
}

const fileUrlPath = (file: string) => file.split('/').map(encodeURIComponent).join('/');

async function exists(p: string): Promise<boolean> {
  try {
    await stat(p);
    return true;
  } catch {
    return false;
  }
}

/** The commit a revision points at in the cache, without the network. */
async function cachedCommit(repoDir: string, revision: string): Promise<string | null> {
  if (COMMIT_RE.test(revision)) return revision;
  try {
    const c = (await readFile(join(repoDir, 'refs', revision), 'utf8')).trim();
    return COMMIT_RE.test(c) ? c : null;
  } catch {
    return null;
  }
}

/** Shard file names listed by a safetensors index, in first-seen order. */
function shardsOf(indexText: string, file: string): string[] {
  let index: { weight_map?: Record<string, string> };
  try {
    index = JSON.parse(indexText);
  } catch (e) {
    throw new DownloadError('HUB_BAD_RESPONSE', `${file} is not valid JSON`, { file, cause: e });
  }
  if (!index.weight_map || typeof index.weight_map !== 'object') throw new DownloadError('HUB_BAD_RESPONSE', `${file} has no "weight_map"`, { file });
  return [...new Set(Object.values(index.weight_map))];
}

/**
 * Whether a snapshot already holds everything a pull would fetch. With an explicit file list,
 * all of them; otherwise config.json, tokenizer.json and complete weights (single file, or the
 * index and every shard it names). Optional files a repo may lack are not required.
 */
async function snapshotComplete(snap: string, files: string[] | undefined): Promise<boolean> {
  if (files) return (await Promise.all(files.map((f) => exists(join(snap, f))))).every(Boolean);
  if (!(await exists(join(snap, 'config.json'))) || !(await exists(join(snap, 'tokenizer.json')))) return false;
  if (await exists(join(snap, SINGLE_WEIGHTS))) return true;
  let indexText: string;
  try {
    indexText = await readFile(join(snap, WEIGHTS_INDEX), 'utf8');
  } catch {
    return false;
  }
  try {
    return (await Promise.all(shardsOf(indexText, WEIGHTS_INDEX).map((s) => exists(join(snap, s))))).every(Boolean);
  } catch {
    return false;
  }
}

interface FileMeta {
  file: string;
  etag: string;
  size: number | null;
  commit: string | null;
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener(
      'abort',
      () => {
        clearTimeout(t);
        reject(signal.reason);
      },
      { once: true },
    );
  });

/** A failure worth retrying: 5xx / 429 statuses and connection-level errors. */
class Retryable extends Error {}

function statusError(status: number, url: string, what: string, file: string | undefined, errorCode: string | null): DownloadError {
  if (status === 404 || errorCode === 'RepoNotFound' || errorCode === 'RevisionNotFound' || errorCode === 'EntryNotFound')
    return new DownloadError('HUB_NOT_FOUND', `no such repo / revision / file: ${what} (HTTP ${status} from ${url})`, { file, url, status });
  if (status === 401 || status === 403)
    return new DownloadError(
      'HUB_AUTH',
      `${what}: access denied (HTTP ${status} from ${url}). The repo may be private, gated or missing: pass --token or set HF_TOKEN (and accept the model's licence on its hub page if it is gated)`,
      { file, url, status },
    );
  return new DownloadError('HUB_BAD_RESPONSE', `${what}: unexpected HTTP ${status} from ${url}`, { file, url, status });
}

/**
 * Downloads `repo` at `revision` into the hub cache and returns its snapshot directory. When the
 * cached snapshot for the revision is already complete, no request is made at all.
 * @example
 * const { snapshotDir } = await pullModel({ repo: 'Qwen/Qwen3-VL-2B-Instruct' });
 */
export async function pullModel(o: PullOptions): Promise<PullResult> {
  const revision = o.revision ?? 'main';
  const endpoint = (o.endpoint ?? process.env.HF_ENDPOINT ?? DEFAULT_ENDPOINT).replace(/\/+$/, '');
  const cacheDir = o.cacheDir ?? defaultCacheDir();
  const doFetch = o.fetchImpl ?? fetch;
  const retries = o.retries ?? 3;
  const retryDelay = o.retryDelayMs ?? 500;
  const signal = o.signal;
  if (!REPO_RE.test(o.repo) || o.repo.includes('..')) throw new DownloadError('HUB_NOT_FOUND', `"${o.repo}" is not a hub repo id (expected ORG/NAME)`);
  const repoDir = repoCacheDir(cacheDir, o.repo);

  const known = await cachedCommit(repoDir, revision);
  if (known) {
    const snap = join(repoDir, 'snapshots', known);
    if (await snapshotComplete(snap, o.files)) return { snapshotDir: snap, commit: known, downloaded: [], cached: true };
  }

  const baseHeaders: Record<string, string> = { 'accept-encoding': 'identity' };
  if (o.token) baseHeaders.authorization = `Bearer ${o.token}`;

  /** Runs `attempt` with bounded exponential backoff on {@link Retryable} failures. */
  async function withRetries<T>(url: string, attempt: () => Promise<T>): Promise<T> {
    for (let i = 0; ; i++) {
      try {
        return await attempt();
      } catch (e) {
        if (signal?.aborted) throw signal.reason;
        if (!(e instanceof Retryable)) throw e;
        if (i >= retries) {
          const cause = (e as Error).cause;
          const detail = cause instanceof Error ? `${cause.message}${(cause as { cause?: Error }).cause ? ` (${(cause as { cause?: Error }).cause?.message})` : ''}` : e.message;
          throw new DownloadError('HUB_NETWORK', `request to ${url} failed after ${retries + 1} attempts: ${detail}`, { url, cause });
        }
        await sleep(retryDelay * 2 ** i, signal);
      }
    }
  }

  async function request(url: string, init: RequestInit): Promise<Response> {
    let res: Response;
    try {
      res = await doFetch(url, { ...init, signal });
    } catch (e) {
      if (signal?.aborted) throw signal.reason;
      throw new Retryable(`connection failed: ${url}`, { cause: e });
    }
    if (res.status >= 500 || res.status === 429) {
      await res.body?.cancel().catch(() => {});
      throw new Retryable(`HTTP ${res.status} from ${url}`, { cause: new Error(`HTTP ${res.status}`) });
    }
    return res;
  }

  // 1. The listing: commit sha and file names.
  const apiUrl = `${endpoint}/api/models/${o.repo}/revision/${encodeURIComponent(revision)}`;
  const listing = await withRetries(apiUrl, async () => {
    const res = await request(apiUrl, { headers: baseHeaders });
    if (!res.ok) {
      await res.body?.cancel().catch(() => {});
      throw statusError(res.status, apiUrl, `${o.repo}@${revision}`, undefined, res.headers.get('x-error-code'));
    }
    try {
      return (await res.json()) as { sha?: string; siblings?: { rfilename: string }[] };
    } catch (e) {
      throw new Retryable(`bad listing from ${apiUrl}`, { cause: e });
    }
  });
  const commit = listing.sha;
  if (!commit || !COMMIT_RE.test(commit) || !Array.isArray(listing.siblings))
    throw new DownloadError('HUB_BAD_RESPONSE', `the listing from ${apiUrl} has no commit "sha" or "siblings"`, { url: apiUrl });
  const siblings = new Set(listing.siblings.map((s) => s.rfilename));
  const snap = join(repoDir, 'snapshots', commit);
  const blobs = join(repoDir, 'blobs');
  await mkdir(blobs, { recursive: true });
  if (revision !== commit) {
    const ref = join(repoDir, 'refs', revision);
    await mkdir(dirname(ref), { recursive: true });
    await writeFile(ref, commit);
  }
  if (await snapshotComplete(snap, o.files)) return { snapshotDir: snap, commit, downloaded: [], cached: false };

  const resolveUrl = (file: string) => `${endpoint}/${o.repo}/resolve/${encodeURIComponent(commit)}/${fileUrlPath(file)}`;

  /** HEAD on the resolve URL, following same-host redirects only: etag, size and commit. */
  async function head(file: string): Promise<FileMeta> {
    const first = resolveUrl(file);
    return withRetries(first, async () => {
      let url = first;
      for (let hop = 0; hop < 5; hop++) {
        const res = await request(url, { method: 'HEAD', headers: baseHeaders, redirect: 'manual' });
        const loc = res.headers.get('location');
        if (res.status >= 300 && res.status < 400 && loc) {
          const next = new URL(loc, url);
          if (next.origin === new URL(url).origin && !res.headers.get('x-linked-etag')) {
            url = next.href;
            continue;
          }
        } else if (!res.ok) {
          throw statusError(res.status, url, `${o.repo}/${file}@${revision}`, file, res.headers.get('x-error-code'));
        }
        const rawEtag = res.headers.get('x-linked-etag') ?? res.headers.get('etag');
        if (!rawEtag) throw new DownloadError('HUB_BAD_RESPONSE', `no etag for ${file} from ${url}`, { file, url });
        const etag = rawEtag.replace(/^W\//, '').replace(/"/g, '');
        if (!/^[\w.-]+$/.test(etag)) throw new DownloadError('HUB_BAD_RESPONSE', `unusable etag "${rawEtag}" for ${file} from ${url}`, { file, url });
        const sizeHeader = res.headers.get('x-linked-size') ?? res.headers.get('content-length');
        const size = sizeHeader !== null && /^\d+$/.test(sizeHeader) ? Number(sizeHeader) : null;
        return { file, etag, size, commit: res.headers.get('x-repo-commit') };
      }
      throw new DownloadError('HUB_BAD_RESPONSE', `too many redirects for ${file} from ${first}`, { file, url: first });
    });
  }

  let totalDone = 0;
  let total = 0;

  /** Hashes the bytes already in a partial file (a resumed download must cover them too). */
  async function hashExisting(path: string, hash: Hash): Promise<number> {
    let n = 0;
    for await (const chunk of createReadStream(path)) {
      hash.update(chunk as Buffer);
      n += (chunk as Buffer).length;
    }
    return n;
  }

  /** Downloads one file into blobs/<etag>, resuming and verifying. Returns whether bytes moved. */
  async function download(meta: FileMeta): Promise<boolean> {
    const blob = join(blobs, meta.etag);
    if (await exists(blob)) return false;
    const part = `${blob}.incomplete`;
    const url = resolveUrl(meta.file);
    const sha256 = SHA256_RE.test(meta.etag);
    // Non-LFS files are named by their git blob sha1, which needs the size up front.
    const checkGit = COMMIT_RE.test(meta.etag) && meta.size !== null;
    const fileBase = totalDone;
    const report = (fileBytes: number, done: boolean) => {
      totalDone = fileBase + fileBytes;
      o.onProgress?.({ file: meta.file, fileBytes, fileTotal: meta.size ?? fileBytes, bytes: totalDone, total, done });
    };
    await withRetries(url, async () => {
      let have = 0;
      try {
        have = (await stat(part)).size;
      } catch {}
      if (meta.size !== null && have > meta.size) {
        await rm(part, { force: true });
        have = 0;
      }
      const headers: Record<string, string> = { ...baseHeaders };
      if (have > 0) headers.range = `bytes=${have}-`;
      // Redirects (to a CDN) are followed by fetch, which drops the Authorization header when
      // the redirect leaves the hub's origin.
      const res = await request(url, { headers });
      if (res.status === 416 && have > 0 && meta.size === have) {
        await res.body?.cancel().catch(() => {});
      } else if (res.status !== 200 && res.status !== 206) {
        await res.body?.cancel().catch(() => {});
        throw statusError(res.status, res.url || url, `${o.repo}/${meta.file}@${revision}`, meta.file, res.headers.get('x-error-code'));
      }
      const append = res.status === 206 || res.status === 416;
      if (res.status === 206) {
        const start = /^bytes (\d+)-/.exec(res.headers.get('content-range') ?? '');
        if (!start || Number(start[1]) !== have) {
          await res.body?.cancel().catch(() => {});
          await rm(part, { force: true });
          throw new Retryable(`range mismatch from ${res.url}`, { cause: new Error(`asked for bytes=${have}-, got "${res.headers.get('content-range')}"`) });
        }
      }
      const hash = createHash(sha256 ? 'sha256' : 'sha1');
      // Git blob ids hash a "blob <size>\0" header before the bytes.
      if (checkGit) hash.update(`blob ${meta.size}\0`);
      let n = append ? await hashExisting(part, hash) : 0;
      const fh = await open(part, append ? 'a' : 'w');
      try {
        if (res.status !== 416 && res.body) {
          let last = 0;
          try {
            for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
              await fh.write(chunk);
              hash.update(chunk);
              n += chunk.length;
              const now = Date.now();
              if (now - last > 100) {
                last = now;
                report(n, false);
              }
            }
          } catch (e) {
            if (signal?.aborted) throw signal.reason;
            throw new Retryable(`transfer interrupted: ${res.url || url}`, { cause: e });
          }
        }
      } finally {
        await fh.close();
      }
      if (meta.size !== null && n !== meta.size) {
        if (n < meta.size) throw new Retryable(`short body from ${res.url || url}`, { cause: new Error(`got ${n} of ${meta.size} bytes`) });
        await rm(part, { force: true });
        throw new DownloadError('DOWNLOAD_SIZE_MISMATCH', `${meta.file}: downloaded ${n} bytes, expected ${meta.size} (from ${url})`, { file: meta.file, url });
      }
      if (sha256 || checkGit) {
        const digest = hash.digest('hex');
        if (digest !== meta.etag) {
          await rm(part, { force: true });
          throw new DownloadError(
            'DOWNLOAD_CHECKSUM_MISMATCH',
            `${meta.file}: checksum mismatch (expected ${sha256 ? 'sha256' : 'git sha1'} ${meta.etag}, got ${digest}); the partial download was deleted, run the pull again`,
            { file: meta.file, url },
          );
        }
      }
      report(n, true);
    });
    await rename(part, blob);
    return true;
  }

  /** snapshots/<commit>/<file> → ../../blobs/<etag> (a copy where symlinks are not allowed). */
  async function link(meta: FileMeta): Promise<void> {
    const dest = join(snap, meta.file);
    const blob = join(blobs, meta.etag);
    await mkdir(dirname(dest), { recursive: true });
    await rm(dest, { force: true });
    try {
      await symlink(relative(dirname(dest), blob), dest);
    } catch {
      await copyFile(blob, dest);
    }
  }

  // 2. Which files: the model set (present in the listing) plus the weights.
  const wanted = o.files ?? [...MODEL_FILES.filter((f) => siblings.has(f))];
  if (o.files) {
    for (const f of o.files) if (!siblings.has(f)) throw new DownloadError('HUB_NOT_FOUND', `no such repo / revision / file: ${o.repo}@${revision} has no "${f}"`, { file: f });
  }
  const metas: FileMeta[] = [];
  for (const f of wanted) metas.push(await head(f));
  const downloaded: string[] = [];
  if (!o.files) {
    if (siblings.has(WEIGHTS_INDEX)) {
      const m = await head(WEIGHTS_INDEX);
      if (await download(m)) downloaded.push(WEIGHTS_INDEX);
      metas.push(m);
      const shards = shardsOf(await readFile(join(blobs, m.etag), 'utf8'), WEIGHTS_INDEX);
      for (const s of shards) {
        if (!siblings.has(s)) throw new DownloadError('HUB_NOT_FOUND', `no such repo / revision / file: ${WEIGHTS_INDEX} names "${s}", which ${o.repo}@${revision} lacks`, { file: s });
        metas.push(await head(s));
      }
    } else if (siblings.has(SINGLE_WEIGHTS)) {
      metas.push(await head(SINGLE_WEIGHTS));
    } else {
      throw new DownloadError('HUB_NOT_FOUND', `no such repo / revision / file: ${o.repo}@${revision} has neither ${SINGLE_WEIGHTS} nor ${WEIGHTS_INDEX}`);
    }
  }

  // 3. Download what the blobs lack, then link the snapshot.
  const missing: FileMeta[] = [];
  for (const m of metas) if (!(await exists(join(blobs, m.etag)))) missing.push(m);
  total = missing.reduce((s, m) => s + (m.size ?? 0), 0);
  for (const m of missing) if (await download(m)) downloaded.push(m.file);
  for (const m of metas) await link(m);
  return { snapshotDir: snap, commit, downloaded, cached: false };
}
