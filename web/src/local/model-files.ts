/**
 * A model directory on a web server (Hugging Face layout, e.g. `/models/<name>/` of
 * `vlmesh serve`) as the weight store sees it: which files it has, their download, and a
 * `ByteSourceDirectory` over the stored files for the checkpoint reader and the tokenizer.
 *
 *   config.json  generation_config.json  tokenizer.json  tokenizer_config.json  chat_template.json
 *   preprocessor_config.json  video_preprocessor_config.json            (all but config.json optional)
 *   model.safetensors.index.json ─► its shards                          (sharded checkpoints)
 *   or model.safetensors                                                (single file)
 */
import { type ByteSource, type ByteSourceDirectory, readText } from '../../../shared/io/byte-source.ts';
import { CheckpointError } from '../../../shared/io/errors.ts';
import { parseSafetensorsIndex, SAFETENSORS_FILE, SAFETENSORS_INDEX_FILE } from '../../../shared/io/safetensors.ts';
import { ModelFetchError } from './errors.ts';
import type { LoadProgress } from './progress.ts';
import type { FileRecord, MissingChunkPolicy, PresentRecord, WeightStore } from './weight-store.ts';

/** The files besides the weights that a model directory may hold; config.json is required. */
export const MODEL_METADATA_FILES = [
  'config.json',
  'generation_config.json',
  'tokenizer.json',
  'tokenizer_config.json',
  'chat_template.json',
  'preprocessor_config.json',
  'video_preprocessor_config.json',
] as const;

/** A model directory's files: name → record (missing optional files have `missing` records). */
export interface ModelFiles {
  /** The directory URL, ending in '/'. */
  baseUrl: string;
  records: Map<string, FileRecord>;
  /** The safetensors files (one, or the shards of the index). */
  weightFiles: string[];
}

/** The directory URL with a trailing '/', resolved against `base` (the page) when relative. */
export function normalizeModelUrl(modelUrl: string, base?: string): string {
  const u = new URL(modelUrl, base);
  u.hash = '';
  u.search = '';
  if (!u.pathname.endsWith('/')) u.pathname += '/';
  return u.href;
}

/** The model's name as a URL gives it: the directory's last path segment ("tiny" for /models/tiny/). */
export function modelNameOf(baseUrl: string): string {
  const parts = new URL(baseUrl).pathname.split('/').filter(Boolean);
  return decodeURIComponent(parts[parts.length - 1] ?? 'model');
}

const fileUrl = (baseUrl: string, file: string) => new URL(encodeURIComponent(file), baseUrl).href;

/**
 * Finds out which files the directory has (stored records, else one-byte probes), reading the
 * sharded index when there is one (stored as it is read: it is small).
 *
 * @throws ModelFetchError when config.json or the weights are absent, or a request fails.
 */
export async function resolveModelFiles(store: WeightStore, baseUrl: string, o: { signal?: AbortSignal } = {}): Promise<ModelFiles> {
  const records = new Map<string, FileRecord>();
  const names = [...MODEL_METADATA_FILES, SAFETENSORS_INDEX_FILE];
  const resolved = await Promise.all(names.map((f) => store.resolve(fileUrl(baseUrl, f), o)));
  for (const [i, f] of names.entries()) records.set(f, resolved[i]);
  if (records.get('config.json')?.state === 'missing') {
    throw new ModelFetchError(fileUrl(baseUrl, 'config.json'), 404, `${baseUrl} has no config.json: it is not a model directory (check the model URL)`);
  }
  let weightFiles: string[];
  const index = records.get(SAFETENSORS_INDEX_FILE) as FileRecord;
  if (index.state !== 'missing') {
    const [done] = await store.download([index], o);
    records.set(SAFETENSORS_INDEX_FILE, done);
    const src = store.source(done as PresentRecord, { name: SAFETENSORS_INDEX_FILE });
    weightFiles = [...new Set(Object.values(parseSafetensorsIndex(await readText(src))))];
  } else {
    weightFiles = [SAFETENSORS_FILE];
  }
  const shards = await Promise.all(weightFiles.map((f) => store.resolve(fileUrl(baseUrl, f), o)));
  weightFiles.forEach((f, i) => {
    if (shards[i].state === 'missing') {
      throw new CheckpointError(
        index.state !== 'missing'
          ? `${baseUrl}: ${SAFETENSORS_INDEX_FILE} lists shard ${f}, but the server has no such file`
          : `${baseUrl}: no ${SAFETENSORS_FILE} and no ${SAFETENSORS_INDEX_FILE}: not a safetensors checkpoint`,
        { file: f },
      );
    }
    records.set(f, shards[i]);
  });
  return { baseUrl, records, weightFiles };
}

/** Downloads every file of the directory that is not stored yet, with 'download' progress. */
export async function downloadModelFiles(
  store: WeightStore,
  files: ModelFiles,
  o: { onProgress?: (p: LoadProgress) => void; signal?: AbortSignal } = {},
): Promise<ModelFiles> {
  const names = [...files.records.keys()];
  const done = await store.download(
    names.map((n) => files.records.get(n) as FileRecord),
    o,
  );
  const records = new Map<string, FileRecord>();
  for (const [i, n] of names.entries()) records.set(n, done[i]);
  return { ...files, records };
}

/**
 * The directory as the checkpoint reader and the tokenizer loader see it: `open(file)` gives a
 * byte source over the stored file, null for files the server does not have.
 */
export function modelDirectory(store: WeightStore, files: ModelFiles, o: { missing?: MissingChunkPolicy } = {}): ByteSourceDirectory {
  return {
    name: files.baseUrl,
    open(file: string): ByteSource | null {
      const rec = files.records.get(file);
      if (!rec || rec.state === 'missing') return null;
      return store.source(rec, { name: file, ...(o.missing ? { missing: o.missing } : {}) });
    },
  };
}
