/**
 * safetensors checkpoints, read range by range from `ByteSource`s.
 *
 * File layout (all integers little-endian):
 *
 *   0        8                8+N                                   size
 *   ┌────────┬─────────────────┬───────────────────────────────────────┐
 *   │ N: u64 │ JSON header (N) │ data section: tensor bytes            │
 *   └────────┴─────────────────┴───────────────────────────────────────┘
 *   header = { "__metadata__": {str: str}?, "<tensor>": { dtype, shape, data_offsets: [begin, end] } }
 *   data_offsets are relative to the data section (byte 8+N of the file).
 *
 * Every header is validated before a byte of data is read: dtype supported (BF16, F16, F32),
 * byte length = product(shape) · bytes(dtype), ranges inside the data section, no two tensors
 * overlapping, file not truncated. Multi-file checkpoints are joined through
 * `model.safetensors.index.json` (`weight_map`: tensor → file). Errors are `CheckpointError`s
 * naming the file and the tensor.
 */
import type { ByteSource, ByteSourceDirectory } from './byte-source.ts';
import { readText } from './byte-source.ts';
import { ByteSourceError, CheckpointError } from './errors.ts';

/** Tensor element types this project reads from checkpoints. */
export type SafetensorsDType = 'BF16' | 'F16' | 'F32';

/** Bytes per element of each supported dtype. */
export const SAFETENSORS_DTYPE_BYTES: Readonly<Record<SafetensorsDType, number>> = { BF16: 2, F16: 2, F32: 4 };

/** Other dtypes the format defines: recognised, so the error can say "unsupported" rather than "unknown". */
const OTHER_DTYPES = new Set([
  'F64',
  'I64',
  'I32',
  'I16',
  'I8',
  'U64',
  'U32',
  'U16',
  'U8',
  'BOOL',
  'F8_E4M3',
  'F8_E5M2',
  'F8_E8M0',
  'F6_E2M3',
  'F6_E3M2',
  'F4',
  'C64',
]);

/** The single-file checkpoint name. */
export const SAFETENSORS_FILE = 'model.safetensors';
/** The index of a sharded checkpoint. */
export const SAFETENSORS_INDEX_FILE = 'model.safetensors.index.json';
/** Headers above this are refused (the reference implementation's limit): a corrupt length must not allocate GBs. */
export const MAX_HEADER_BYTES = 100_000_000;

/** Where one tensor's bytes are. */
export interface TensorInfo {
  /** Tensor name, e.g. `model.language_model.layers.0.self_attn.q_proj.weight`. */
  readonly name: string;
  /** The file holding it (as the checkpoint directory names it). */
  readonly file: string;
  readonly dtype: SafetensorsDType;
  readonly shape: readonly number[];
  /** Number of elements: product(shape) (1 for a scalar). */
  readonly elements: number;
  /** Absolute byte offset of the first element in `file`. */
  readonly byteOffset: number;
  /** Bytes of data: elements · bytes(dtype). */
  readonly byteLength: number;
}

/** A parsed and validated safetensors header. */
export interface SafetensorsHeader {
  readonly file: string;
  readonly fileSize: number;
  /** N, the JSON header's length in bytes. */
  readonly headerLength: number;
  /** 8 + N: where the data section starts. */
  readonly dataOffset: number;
  /** `__metadata__` (string → string), empty when absent. */
  readonly metadata: Readonly<Record<string, string>>;
  /** Tensors in header order. */
  readonly tensors: readonly TensorInfo[];
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/**
 * Validates the JSON header of a safetensors file whose total size is `fileSize`.
 * `json` is the N header bytes (after the 8-byte length).
 */
export function parseSafetensorsHeader(file: string, fileSize: number, json: Uint8Array): SafetensorsHeader {
  const headerLength = json.byteLength;
  const dataOffset = 8 + headerLength;
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(json);
  } catch (e) {
    throw new CheckpointError(`${file}: the safetensors header is not valid UTF-8 (not a safetensors file?)`, { file }, { cause: e });
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new CheckpointError(
      `${file}: the safetensors header (${headerLength} bytes) is not valid JSON: ${(e as Error).message}`,
      { file },
      { cause: e },
    );
  }
  if (!isObject(raw)) throw new CheckpointError(`${file}: the safetensors header is not a JSON object`, { file });

  const metadata: Record<string, string> = {};
  const tensors: TensorInfo[] = [];
  const dataSize = fileSize - dataOffset;
  for (const [name, entry] of Object.entries(raw)) {
    if (name === '__metadata__') {
      if (!isObject(entry)) throw new CheckpointError(`${file}: "__metadata__" must be an object of strings`, { file });
      for (const [k, v] of Object.entries(entry)) {
        if (typeof v !== 'string') {
          throw new CheckpointError(`${file}: "__metadata__.${k}" must be a string, got ${JSON.stringify(v)}`, { file });
        }
        metadata[k] = v;
      }
      continue;
    }
    const bad = (what: string): CheckpointError =>
      new CheckpointError(`${file}: tensor "${name}": ${what}`, { file, tensor: name });
    if (!isObject(entry)) throw bad('header entry is not an object');
    const { dtype, shape, data_offsets: offsets } = entry;
    if (typeof dtype !== 'string') throw bad(`"dtype" must be a string, got ${JSON.stringify(dtype)}`);
    if (!(dtype in SAFETENSORS_DTYPE_BYTES)) {
      const kind = OTHER_DTYPES.has(dtype) ? 'is not supported' : 'is not a safetensors dtype';
      throw bad(`dtype ${dtype} ${kind} (supported: BF16, F16, F32)`);
    }
    if (!Array.isArray(shape) || !shape.every(isCount)) {
      throw bad(`"shape" must be a list of non-negative integers, got ${JSON.stringify(shape)}`);
    }
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isCount) || offsets[0] > offsets[1]) {
      throw bad(`"data_offsets" must be [begin, end] with 0 ≤ begin ≤ end, got ${JSON.stringify(offsets)}`);
    }
    const d = dtype as SafetensorsDType;
    let elements = 1;
    for (const s of shape as number[]) elements *= s;
    const [begin, end] = offsets as [number, number];
    const expected = elements * SAFETENSORS_DTYPE_BYTES[d];
    if (end - begin !== expected) {
      throw bad(
        `data_offsets [${begin}, ${end}] hold ${end - begin} bytes, but ${dtype} [${shape.join(', ')}] needs ` +
          `${elements} × ${SAFETENSORS_DTYPE_BYTES[d]} = ${expected} bytes`,
      );
    }
    tensors.push({
      name,
      file,
      dtype: d,
      shape: shape as number[],
      elements,
      byteOffset: dataOffset + begin,
      byteLength: expected,
    });
  }

  // Ranges must not overlap and must lie inside the file.
  const byStart = [...tensors].sort((a, b) => a.byteOffset - b.byteOffset || a.byteLength - b.byteLength);
  let prev: TensorInfo | null = null;
  for (const t of byStart) {
    if (t.byteLength === 0) continue;
    if (prev && t.byteOffset < prev.byteOffset + prev.byteLength) {
      throw new CheckpointError(
        `${file}: tensor "${t.name}" (data bytes [${t.byteOffset - dataOffset}, ${t.byteOffset - dataOffset + t.byteLength})) ` +
          `overlaps tensor "${prev.name}" (data bytes [${prev.byteOffset - dataOffset}, ${prev.byteOffset - dataOffset + prev.byteLength}))`,
        { file, tensor: t.name },
      );
    }
    prev = t;
  }
  const last = byStart.findLast((t) => t.byteLength > 0);
  if (last && last.byteOffset + last.byteLength > fileSize) {
    const firstOut = byStart.find((t) => t.byteOffset + t.byteLength > fileSize)!;
    throw new CheckpointError(
      `${file}: the file is truncated: tensor "${firstOut.name}" needs data bytes ` +
        `[${firstOut.byteOffset - dataOffset}, ${firstOut.byteOffset - dataOffset + firstOut.byteLength}) but the data section ` +
        `holds only ${Math.max(0, dataSize)} bytes (file ${fileSize} bytes, header ${headerLength} bytes)`,
      { file, tensor: firstOut.name },
    );
  }
  return { file, fileSize, headerLength, dataOffset, metadata, tensors };
}

/**
 * Reads and validates the header of a safetensors file (two small reads; no tensor data).
 *
 * @example
 * const header = await readSafetensorsHeader(await FileSource.open('model.safetensors'));
 */
export async function readSafetensorsHeader(src: ByteSource): Promise<SafetensorsHeader> {
  const file = src.name;
  if (src.size < 8) {
    throw new CheckpointError(`${file}: ${src.size} bytes is too small to be a safetensors file (truncated?)`, { file });
  }
  const lenBytes = await src.read(0, 8);
  const n = new DataView(lenBytes.buffer, lenBytes.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(src.size - 8)) {
    throw new CheckpointError(
      `${file}: the header length field says ${n} bytes but the file has only ${src.size - 8} bytes after it ` +
        `(truncated, or not a safetensors file)`,
      { file },
    );
  }
  if (n > BigInt(MAX_HEADER_BYTES)) {
    throw new CheckpointError(`${file}: header of ${n} bytes is above the ${MAX_HEADER_BYTES}-byte limit`, { file });
  }
  const json = await src.read(8, Number(n));
  return parseSafetensorsHeader(file, src.size, json);
}

/**
 * The tensors of a checkpoint: one `model.safetensors`, or the shards listed by
 * `model.safetensors.index.json`. It holds the files' byte sources open (close it when done)
 * and reads tensor bytes range by range.
 */
export class Checkpoint {
  private readonly byName: Map<string, TensorInfo>;
  private readonly sources: Map<string, ByteSource>;

  private constructor(
    /** The directory (or source list) it was opened from. */
    readonly name: string,
    /** Each file's parsed header, in opening order. */
    readonly headers: readonly SafetensorsHeader[],
    sources: Map<string, ByteSource>,
    byName: Map<string, TensorInfo>,
    /** True when read through `model.safetensors.index.json`. */
    readonly sharded: boolean,
  ) {
    this.sources = sources;
    this.byName = byName;
  }

  /**
   * A checkpoint over already-open files. With a `weightMap` (tensor → file, as in
   * `model.safetensors.index.json`), every mapped tensor must be in its file.
   */
  static async fromSources(name: string, sources: readonly ByteSource[], weightMap?: Readonly<Record<string, string>>): Promise<Checkpoint> {
    const srcMap = new Map<string, ByteSource>();
    for (const s of sources) {
      if (srcMap.has(s.name)) throw new CheckpointError(`${name}: file ${s.name} given twice`, { file: s.name });
      srcMap.set(s.name, s);
    }
    const headers: SafetensorsHeader[] = [];
    for (const s of sources) headers.push(await readSafetensorsHeader(s));
    const byName = new Map<string, TensorInfo>();
    for (const h of headers) {
      for (const t of h.tensors) {
        const other = byName.get(t.name);
        if (other) {
          throw new CheckpointError(`${name}: tensor "${t.name}" is stored twice, in ${other.file} and in ${t.file}`, {
            file: t.file,
            tensor: t.name,
          });
        }
        byName.set(t.name, t);
      }
    }
    if (weightMap) {
      for (const [tensor, file] of Object.entries(weightMap)) {
        const t = byName.get(tensor);
        if (!t || t.file !== file) {
          const where = t ? `it is in ${t.file}` : 'no file of the checkpoint has it';
          throw new CheckpointError(`${SAFETENSORS_INDEX_FILE} maps tensor "${tensor}" to ${file}, but ${where}`, { file, tensor });
        }
      }
    }
    return new Checkpoint(name, headers, srcMap, byName, weightMap !== undefined);
  }

  /** Tensor names, in file order then header order. */
  names(): string[] {
    return [...this.byName.keys()];
  }

  /** Number of tensors. */
  get size(): number {
    return this.byName.size;
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  /** Where a tensor is; throws `CheckpointError` naming the tensor when it is absent. */
  tensor(name: string): TensorInfo {
    const t = this.byName.get(name);
    if (!t) throw new CheckpointError(`${this.describe()}: no tensor "${name}"`, { tensor: name });
    return t;
  }

  /** All tensors' infos. */
  tensors(): TensorInfo[] {
    return [...this.byName.values()];
  }

  /** The file names, in opening order. */
  files(): string[] {
    return this.headers.map((h) => h.file);
  }

  /** The byte source of one file. */
  source(file: string): ByteSource {
    const s = this.sources.get(file);
    if (!s) throw new CheckpointError(`${this.describe()}: no file ${file}`, { file });
    return s;
  }

  /** Total bytes of tensor data. */
  get dataBytes(): number {
    let n = 0;
    for (const t of this.byName.values()) n += t.byteLength;
    return n;
  }

  /** What error messages call the checkpoint: its files. */
  describe(): string {
    const files = this.files();
    return this.sharded ? `${SAFETENSORS_INDEX_FILE} (shards ${files.join(', ')})` : files.join(', ');
  }

  /**
   * Bytes `[offset, offset + length)` of a tensor's data (default: all of it). For large tensors
   * read in chunks (see upload.ts) rather than whole.
   */
  async readBytes(name: string, offset = 0, length?: number): Promise<Uint8Array> {
    const t = this.tensor(name);
    const len = length ?? t.byteLength - offset;
    if (offset < 0 || len < 0 || offset + len > t.byteLength) {
      throw new CheckpointError(`${t.file}: tensor "${name}": bytes [${offset}, ${offset + len}) are outside its ${t.byteLength} bytes`, {
        file: t.file,
        tensor: name,
      });
    }
    try {
      return await this.source(t.file).read(t.byteOffset + offset, len);
    } catch (e) {
      if (e instanceof ByteSourceError) {
        throw new CheckpointError(`${t.file}: reading tensor "${name}" failed: ${e.message}`, { file: t.file, tensor: name }, { cause: e });
      }
      throw e;
    }
  }

  /** Closes every file. */
  async close(): Promise<void> {
    await Promise.all([...this.sources.values()].map((s) => s.close?.()));
  }
}

/** Parses `model.safetensors.index.json` into its weight map (tensor → file). */
export function parseSafetensorsIndex(text: string, file = SAFETENSORS_INDEX_FILE): Record<string, string> {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new CheckpointError(`${file} is not valid JSON: ${(e as Error).message}`, { file }, { cause: e });
  }
  if (!isObject(raw) || !isObject(raw.weight_map)) {
    throw new CheckpointError(`${file}: "weight_map" (tensor name → file) is missing or not an object`, { file });
  }
  const map: Record<string, string> = {};
  for (const [tensor, shard] of Object.entries(raw.weight_map)) {
    if (typeof shard !== 'string' || shard === '' || /[/\\]/.test(shard) || shard === '.' || shard === '..') {
      throw new CheckpointError(`${file}: "weight_map.${tensor}" must be a file name in the same directory, got ${JSON.stringify(shard)}`, {
        file,
        tensor,
      });
    }
    map[tensor] = shard;
  }
  return map;
}

/**
 * Opens the checkpoint in `dir`: `model.safetensors.index.json` and its shards when the index
 * exists, else `model.safetensors`. Reads only the headers.
 *
 * @example
 * const ckpt = await openCheckpoint(fileDirectory('/models/qwen3-vl-2b'));
 * console.log(ckpt.tensor('lm_head.weight').shape);
 */
export async function openCheckpoint(dir: ByteSourceDirectory): Promise<Checkpoint> {
  const opened: ByteSource[] = [];
  try {
    const index = await dir.open(SAFETENSORS_INDEX_FILE);
    if (index) {
      opened.push(index);
      const weightMap = parseSafetensorsIndex(await readText(index));
      const firstTensor = new Map<string, string>();
      for (const [tensor, shard] of Object.entries(weightMap)) if (!firstTensor.has(shard)) firstTensor.set(shard, tensor);
      if (firstTensor.size === 0) throw new CheckpointError(`${dir.name}/${SAFETENSORS_INDEX_FILE}: "weight_map" is empty`, { file: SAFETENSORS_INDEX_FILE });
      const shards: ByteSource[] = [];
      for (const [shard, tensor] of firstTensor) {
        const src = await dir.open(shard);
        if (!src) {
          throw new CheckpointError(
            `${dir.name}: ${SAFETENSORS_INDEX_FILE} lists shard ${shard} (for tensor "${tensor}" and others), but the file is missing`,
            { file: shard, tensor },
          );
        }
        opened.push(src);
        shards.push(src);
      }
      await index.close?.();
      return await Checkpoint.fromSources(dir.name, shards, weightMap);
    }
    const single = await dir.open(SAFETENSORS_FILE);
    if (!single) {
      throw new CheckpointError(`${dir.name}: no ${SAFETENSORS_FILE} and no ${SAFETENSORS_INDEX_FILE}: not a safetensors checkpoint`, {
        file: SAFETENSORS_FILE,
      });
    }
    opened.push(single);
    return await Checkpoint.fromSources(dir.name, [single]);
  } catch (e) {
    await Promise.all(opened.map((s) => s.close?.().catch(() => undefined)));
    throw e;
  }
}
