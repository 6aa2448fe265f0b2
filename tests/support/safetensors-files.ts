/**
 * Writing safetensors files for tests: encode tensors, rewrite a file's header (to make it
 * corrupt in one precise way), split a file into shards with an index. Node only.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface HeaderEntry {
  dtype: string;
  shape: number[];
  data_offsets: [number, number];
}
export type Header = Record<string, HeaderEntry | Record<string, string>>;

/** A tensor to encode: raw little-endian bytes. */
export interface RawTensor {
  dtype: string;
  shape: number[];
  data: Uint8Array;
}

/** Encodes tensors (data packed in the given order) into safetensors bytes, header padded to 8. */
export function encodeSafetensors(tensors: Record<string, RawTensor>, metadata: Record<string, string> = { format: 'pt' }): Uint8Array {
  const header: Header = { __metadata__: metadata };
  let at = 0;
  for (const [name, t] of Object.entries(tensors)) {
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [at, at + t.data.byteLength] };
    at += t.data.byteLength;
  }
  const data = new Uint8Array(at);
  at = 0;
  for (const t of Object.values(tensors)) {
    data.set(t.data, at);
    at += t.data.byteLength;
  }
  return assemble(header, data);
}

/** Header JSON (space-padded to a multiple of 8) + data section → file bytes. */
export function assemble(header: Header, data: Uint8Array): Uint8Array {
  let json = JSON.stringify(header);
  while ((8 + Buffer.byteLength(json)) % 8 !== 0) json += ' ';
  const jsonBytes = Buffer.from(json, 'utf8');
  const out = new Uint8Array(8 + jsonBytes.byteLength + data.byteLength);
  new DataView(out.buffer).setBigUint64(0, BigInt(jsonBytes.byteLength), true);
  out.set(jsonBytes, 8);
  out.set(data, 8 + jsonBytes.byteLength);
  return out;
}

/** Splits file bytes into its header object and data section. */
export function disassemble(bytes: Uint8Array): { header: Header; data: Uint8Array } {
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true));
  const header = JSON.parse(Buffer.from(bytes.subarray(8, 8 + n)).toString('utf8')) as Header;
  return { header, data: bytes.subarray(8 + n) };
}

/** The file with its header changed by `edit` (the data section kept as is). */
export function rewriteHeader(bytes: Uint8Array, edit: (h: Record<string, HeaderEntry>) => void): Uint8Array {
  const { header, data } = disassemble(bytes);
  edit(header as Record<string, HeaderEntry>);
  return assemble(header, data);
}

/** Each tensor's raw bytes, by name. */
export function tensorBytes(bytes: Uint8Array): Map<string, RawTensor> {
  const { header, data } = disassemble(bytes);
  const out = new Map<string, RawTensor>();
  for (const [name, e] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const h = e as HeaderEntry;
    out.set(name, { dtype: h.dtype, shape: h.shape, data: data.subarray(h.data_offsets[0], h.data_offsets[1]) });
  }
  return out;
}

/**
 * Writes `bytes` as `shards` files `model-0000k-of-0000n.safetensors` (tensors dealt round-robin)
 * plus `model.safetensors.index.json` into `dir`. Returns the weight map.
 */
export function writeSharded(dir: string, bytes: Uint8Array, shards = 2): Record<string, string> {
  const tensors = [...tensorBytes(bytes)];
  const fileName = (k: number) => `model-${String(k + 1).padStart(5, '0')}-of-${String(shards).padStart(5, '0')}.safetensors`;
  const weightMap: Record<string, string> = {};
  for (let k = 0; k < shards; k++) {
    const part: Record<string, RawTensor> = {};
    tensors.forEach(([name, t], i) => {
      if (i % shards === k) {
        part[name] = t;
        weightMap[name] = fileName(k);
      }
    });
    writeFileSync(join(dir, fileName(k)), encodeSafetensors(part));
  }
  const total = tensors.reduce((a, [, t]) => a + t.data.byteLength, 0);
  writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2));
  return weightMap;
}

/** A fresh directory under the OS temp dir, and its removal. */
export function tempDir(prefix: string): { path: string; remove: () => void } {
  const path = mkdtempSync(join(tmpdir(), `vlmesh-${prefix}-`));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

/** Reads a file as a Uint8Array with its own buffer. */
export function readBytes(path: string): Uint8Array<ArrayBuffer> {
  return new Uint8Array(readFileSync(path));
}
