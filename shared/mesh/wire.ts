/**
 * The mesh wire format: every message between the coordinator and a stage is one framed binary
 * message, a discriminated union on `kind`. Hidden states travel as f16 (or f32), with the
 * MRoPE positions of their rows, in one frame per chunk:
 *
 *   offset  size  field
 *        0     4  magic "VLMH"
 *        4     1  version (1)
 *        5     1  kind        forward | result | release | ping | pong | assign | error | hello
 *                             | prompt | embed | probe
 *        6     1  dtype       none | f16 | f32 | json | u32
 *        7     1  flags       bit 0: replay (rebuilding a KV cache)
 *        8     4  seq         sequence (request) id in the stage's KV cache
 *       12     4  chunk       chunk index within the sequence (ping/pong: nonce)
 *       16     4  start       absolute index of the chunk's first token
 *       20     4  rows        T
 *       24     4  cols        hidden size (0 for json/none)
 *       28     4  positions   rows carrying positions (T for tensors, else 0)
 *       32     4  payload     payload bytes
 *       36     4  crc32       of every other byte of the frame
 *       40  12·T  positions   int32 [3, T] (t, h, w)
 *        …     …  payload     [T, cols] f16/f32, or UTF-8 JSON
 *
 * All little-endian. A forward of T tokens costs `40 + 12·T + T·hidden·2` bytes in f16: per
 * token `hidden × 2` plus 12 bytes of positions and the fixed 40-byte header.
 *
 * Behind a coordinator that holds no layer (`--mesh-only`) the head stage is a peer: it owns the
 * embeddings, the vision tower and the DeepStack layers, so it receives what they need instead of
 * hidden states — a `prompt` once per sequence (token ids and the preprocessed pixels; `chunk`
 * holds the JSON length, `rows × cols` the f32 pixels after it, 4-byte aligned) and an `embed`
 * per chunk (u32 token ids with their positions: a decoded token costs 40 + 12 + 4 bytes).
 * Vision features never cross the network.
 *
 * A `probe` (nonce in `chunk`, `payload` bytes of zeros) is answered at once with a `pong`: the
 * coordinator times it against a plain ping to estimate a peer's bandwidth when it joins.
 *
 * `decodeMessage` checks everything a misbehaving peer could get wrong and throws a `WireError`
 * whose `code` says what: magic, version, length, shape, checksum, non-finite values.
 */
import { VlmeshError } from '../errors.ts';
import { f16BitsToF32, f32ToF16Bits } from '../gpu/f16.ts';

export const WIRE_MAGIC = 0x484d4c56; // "VLMH" little-endian
export const WIRE_VERSION = 1;
export const HEADER_BYTES = 40;

const KINDS = ['forward', 'result', 'release', 'ping', 'pong', 'assign', 'error', 'hello', 'prompt', 'embed', 'probe'] as const;
export type MessageKind = (typeof KINDS)[number];
const DTYPES = ['none', 'f16', 'f32', 'json', 'u32'] as const;
/** Dtype of hidden states on the wire. */
export type WireDType = 'f16' | 'f32';

export type Positions = readonly [Int32Array, Int32Array, Int32Array];

/** Hidden states of one chunk of one sequence (forward: into a stage; result: out of it). */
export interface TensorMessage {
  kind: 'forward' | 'result';
  seq: number;
  chunk: number;
  start: number;
  /** Row i of `hidden` is token `start + i`; positions are `[3, rows]`. */
  positions: Positions;
  /** `[rows, cols]` row-major. */
  hidden: Float32Array;
  rows: number;
  cols: number;
  /** Dtype the frame carries (f16 rounds the values). */
  dtype: WireDType;
  /** Set on forwards that rebuild a stage's KV cache after a replan. */
  replay?: boolean;
}

/** One chunk's token ids for the head stage, which embeds them itself (see the file comment). */
export interface EmbedMessage {
  kind: 'embed';
  seq: number;
  chunk: number;
  start: number;
  positions: Positions;
  /** Token `start + i` is `ids[i]`. Prompt rows take their embeddings (vision features included) from the sequence's `prompt`. */
  ids: Uint32Array;
  rows: number;
  replay?: boolean;
}

/** The preprocessed pixels of a prompt's images or of its video, and their grids `(t, h, w)`. */
export interface PromptPixels {
  /** `[Σ t·h·w, patch]` row-major, as the official processor makes them. */
  pixelValues: Float32Array;
  grids: readonly (readonly [number, number, number])[];
}

/** A sequence's prompt for the head stage: sent before its first `embed` (again after a replan). */
export interface PromptMessage {
  kind: 'prompt';
  seq: number;
  inputIds: Uint32Array;
  images?: PromptPixels;
  videos?: PromptPixels;
}

/** A stage's new layer range (the stage rebuilds its cache for the sequences listed by replays). */
export interface AssignMessage {
  kind: 'assign';
  range: readonly [number, number];
  /** Monotonic plan number, echoed in the stage's results through `chunk` of a pong. */
  epoch: number;
}

/** A peer's first message: what it offers (placement input) and what runs it. */
export interface HelloMessage {
  kind: 'hello';
  /** Bytes the peer gives to weights and KV cache. */
  memoryBytes: number;
  /** Measured tokens/s through one decoder layer. */
  throughput: number;
  /** 'node' (vlmesh join) or 'browser' (/donate). */
  peerKind: string;
  /** The adapter's description, for GET /v1/mesh. */
  adapter: string;
}

export type MeshMessage =
  | TensorMessage
  | EmbedMessage
  | PromptMessage
  | HelloMessage
  | { kind: 'release'; seq: number }
  | { kind: 'ping' | 'pong'; nonce: number }
  /** A bandwidth probe: `bytes` of padding, answered with a pong of the same nonce. */
  | { kind: 'probe'; nonce: number; bytes: number }
  | AssignMessage
  | { kind: 'error'; code: string; message: string };

/** A frame that cannot be trusted; `code` names the check that failed. */
export class WireError extends VlmeshError {
  constructor(
    code: 'WIRE_MAGIC' | 'WIRE_VERSION' | 'WIRE_LENGTH' | 'WIRE_SHAPE' | 'WIRE_CHECKSUM' | 'WIRE_NAN' | 'WIRE_KIND',
    message: string,
  ) {
    super(code, message);
  }
}

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC-32 (IEEE 802.3, as zlib), continuing from `crc` (0 to start). */
export function crc32(bytes: Uint8Array, crc = 0): number {
  let c = ~crc >>> 0;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}

function frameCrc(frame: Uint8Array): number {
  return crc32(frame.subarray(HEADER_BYTES - 4 + 4), crc32(frame.subarray(0, HEADER_BYTES - 4)));
}

/** Bytes of the frame that carries `rows` tokens of `cols` values in `dtype`. */
export function frameBytes(rows: number, cols: number, dtype: WireDType = 'f16'): number {
  return HEADER_BYTES + 12 * rows + rows * cols * (dtype === 'f16' ? 2 : 4);
}

/** Encodes one message as a frame. */
export function encodeMessage(msg: MeshMessage): Uint8Array {
  let dtype = 0;
  let flags = 0;
  let seq = 0;
  let chunk = 0;
  let start = 0;
  let rows = 0;
  let cols = 0;
  let npos = 0;
  let payload: Uint8Array = new Uint8Array(0);
  let positions: Positions | null = null;
  switch (msg.kind) {
    case 'forward':
    case 'result': {
      if (msg.hidden.length !== msg.rows * msg.cols) throw new WireError('WIRE_SHAPE', `hidden has ${msg.hidden.length} values, not ${msg.rows} × ${msg.cols}`);
      for (const p of msg.positions) if (p.length !== msg.rows) throw new WireError('WIRE_SHAPE', `positions must be [3, ${msg.rows}]`);
      ({ seq, chunk, start, rows, cols } = msg);
      npos = rows;
      positions = msg.positions;
      flags = msg.replay ? 1 : 0;
      if (msg.dtype === 'f16') {
        dtype = 1;
        const bits = new Uint16Array(msg.hidden.length);
        for (let i = 0; i < bits.length; i++) bits[i] = f32ToF16Bits(msg.hidden[i]);
        payload = new Uint8Array(bits.buffer);
      } else {
        dtype = 2;
        payload = new Uint8Array(msg.hidden.buffer.slice(msg.hidden.byteOffset, msg.hidden.byteOffset + msg.hidden.byteLength));
      }
      break;
    }
    case 'embed': {
      if (msg.ids.length !== msg.rows) throw new WireError('WIRE_SHAPE', `embed carries ${msg.ids.length} ids, not ${msg.rows}`);
      for (const p of msg.positions) if (p.length !== msg.rows) throw new WireError('WIRE_SHAPE', `positions must be [3, ${msg.rows}]`);
      ({ seq, chunk, start, rows } = msg);
      cols = 1;
      npos = rows;
      positions = msg.positions;
      flags = msg.replay ? 1 : 0;
      dtype = 4;
      payload = new Uint8Array(msg.ids.buffer.slice(msg.ids.byteOffset, msg.ids.byteOffset + msg.ids.byteLength));
      break;
    }
    case 'prompt': {
      seq = msg.seq;
      const parts = [msg.images, msg.videos].filter((p): p is PromptPixels => p !== undefined);
      const rowsOf = (p: PromptPixels) => p.grids.reduce((n, [t, h, w]) => n + t * h * w, 0);
      rows = parts.reduce((n, p) => n + rowsOf(p), 0);
      const values = parts.reduce((n, p) => n + p.pixelValues.length, 0);
      cols = rows ? values / rows : 0;
      if (!Number.isInteger(cols) || (rows === 0 && values > 0)) throw new WireError('WIRE_SHAPE', `${values} pixel values do not split into ${rows} rows`);
      for (const p of parts) {
        if (p.pixelValues.length !== rowsOf(p) * cols) throw new WireError('WIRE_SHAPE', `pixel values of ${p.pixelValues.length} do not match grids ${JSON.stringify(p.grids)}`);
      }
      const json = new TextEncoder().encode(
        JSON.stringify({ inputIds: Array.from(msg.inputIds), images: msg.images?.grids ?? null, videos: msg.videos?.grids ?? null }),
      );
      chunk = json.length;
      const pad = (4 - (json.length % 4)) % 4;
      dtype = 3;
      payload = new Uint8Array(json.length + pad + 4 * values);
      payload.set(json);
      let o = json.length + pad;
      for (const p of parts) {
        payload.set(new Uint8Array(p.pixelValues.buffer, p.pixelValues.byteOffset, p.pixelValues.byteLength), o);
        o += p.pixelValues.byteLength;
      }
      break;
    }
    case 'release':
      seq = msg.seq;
      break;
    case 'ping':
    case 'pong':
      chunk = msg.nonce;
      break;
    case 'probe':
      chunk = msg.nonce;
      payload = new Uint8Array(msg.bytes);
      break;
    case 'assign':
      dtype = 3;
      payload = new TextEncoder().encode(JSON.stringify({ range: msg.range, epoch: msg.epoch }));
      break;
    case 'error':
      dtype = 3;
      payload = new TextEncoder().encode(JSON.stringify({ code: msg.code, message: msg.message }));
      break;
    case 'hello':
      dtype = 3;
      payload = new TextEncoder().encode(
        JSON.stringify({ memoryBytes: msg.memoryBytes, throughput: msg.throughput, peerKind: msg.peerKind, adapter: msg.adapter }),
      );
      break;
  }
  const frame = new Uint8Array(HEADER_BYTES + 12 * npos + payload.length);
  const dv = new DataView(frame.buffer);
  dv.setUint32(0, WIRE_MAGIC, true);
  dv.setUint8(4, WIRE_VERSION);
  dv.setUint8(5, KINDS.indexOf(msg.kind));
  dv.setUint8(6, dtype);
  dv.setUint8(7, flags);
  dv.setUint32(8, seq, true);
  dv.setUint32(12, chunk, true);
  dv.setUint32(16, start, true);
  dv.setUint32(20, rows, true);
  dv.setUint32(24, cols, true);
  dv.setUint32(28, npos, true);
  dv.setUint32(32, payload.length, true);
  if (positions) {
    for (let a = 0; a < 3; a++) for (let i = 0; i < npos; i++) dv.setInt32(HEADER_BYTES + 4 * (a * npos + i), positions[a][i], true);
  }
  frame.set(payload, HEADER_BYTES + 12 * npos);
  dv.setUint32(36, frameCrc(frame), true);
  return frame;
}

export interface DecodeOptions {
  /** Hidden size a tensor frame must have (a wrong one is a WIRE_SHAPE error). */
  cols?: number;
}

/**
 * Decodes and checks one frame.
 *
 * @throws WireError on a wrong magic, version or kind, a length that does not match the header,
 *   a shape other than `[rows, o.cols]`, a checksum mismatch, or a NaN/Inf hidden value.
 */
export function decodeMessage(frame: Uint8Array, o: DecodeOptions = {}): MeshMessage {
  if (frame.length < HEADER_BYTES) throw new WireError('WIRE_LENGTH', `frame of ${frame.length} bytes is shorter than the ${HEADER_BYTES}-byte header`);
  const dv = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  const magic = dv.getUint32(0, true);
  if (magic !== WIRE_MAGIC) throw new WireError('WIRE_MAGIC', `bad magic 0x${magic.toString(16)} (not a mesh frame)`);
  const version = dv.getUint8(4);
  if (version !== WIRE_VERSION) throw new WireError('WIRE_VERSION', `frame version ${version}; this node speaks ${WIRE_VERSION}`);
  const kind = KINDS[dv.getUint8(5)];
  const dtype = DTYPES[dv.getUint8(6)];
  if (!kind || !dtype) throw new WireError('WIRE_KIND', `unknown kind ${dv.getUint8(5)} or dtype ${dv.getUint8(6)}`);
  const flags = dv.getUint8(7);
  const seq = dv.getUint32(8, true);
  const chunk = dv.getUint32(12, true);
  const start = dv.getUint32(16, true);
  const rows = dv.getUint32(20, true);
  const cols = dv.getUint32(24, true);
  const npos = dv.getUint32(28, true);
  const payloadLen = dv.getUint32(32, true);
  const expected = HEADER_BYTES + 12 * npos + payloadLen;
  if (frame.length !== expected) throw new WireError('WIRE_LENGTH', `frame has ${frame.length} bytes; its header says ${expected}`);
  if (dv.getUint32(36, true) !== frameCrc(frame)) throw new WireError('WIRE_CHECKSUM', `checksum mismatch on a ${kind} frame of sequence ${seq}`);
  const payload = frame.subarray(HEADER_BYTES + 12 * npos);
  const json = () => {
    if (dtype !== 'json') throw new WireError('WIRE_SHAPE', `a ${kind} frame must carry JSON`);
    return JSON.parse(new TextDecoder().decode(payload)) as Record<string, unknown>;
  };
  switch (kind) {
    case 'forward':
    case 'result': {
      if (dtype !== 'f16' && dtype !== 'f32') throw new WireError('WIRE_SHAPE', `a ${kind} frame must carry f16 or f32, not ${dtype}`);
      if (o.cols !== undefined && cols !== o.cols) throw new WireError('WIRE_SHAPE', `hidden size ${cols}; expected ${o.cols}`);
      const bpe = dtype === 'f16' ? 2 : 4;
      if (npos !== rows || rows === 0 || payloadLen !== rows * cols * bpe) {
        throw new WireError('WIRE_SHAPE', `shape [${rows}, ${cols}] ${dtype} with ${npos} position rows and ${payloadLen} payload bytes`);
      }
      const positions = readPositions(dv, rows);
      const n = rows * cols;
      const hidden = new Float32Array(n);
      const pv = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
      for (let i = 0; i < n; i++) {
        const v = bpe === 2 ? f16BitsToF32(pv.getUint16(2 * i, true)) : pv.getFloat32(4 * i, true);
        if (!Number.isFinite(v)) throw new WireError('WIRE_NAN', `non-finite hidden value at row ${Math.floor(i / cols)} of sequence ${seq}`);
        hidden[i] = v;
      }
      return { kind, seq, chunk, start, positions, hidden, rows, cols, dtype, ...(flags & 1 ? { replay: true } : {}) };
    }
    case 'embed': {
      if (dtype !== 'u32' || cols !== 1 || npos !== rows || rows === 0 || payloadLen !== rows * 4) {
        throw new WireError('WIRE_SHAPE', `embed frame of ${rows} ids (${dtype}, ${cols} columns, ${npos} position rows, ${payloadLen} payload bytes)`);
      }
      const positions = readPositions(dv, rows);
      const ids = new Uint32Array(rows);
      const pv = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
      for (let i = 0; i < rows; i++) ids[i] = pv.getUint32(4 * i, true);
      return { kind, seq, chunk, start, positions, ids, rows, ...(flags & 1 ? { replay: true } : {}) };
    }
    case 'prompt':
      return decodePrompt(seq, chunk, rows, cols, payload);
    case 'release':
      return { kind, seq };
    case 'ping':
    case 'pong':
      return { kind, nonce: chunk };
    case 'probe':
      return { kind, nonce: chunk, bytes: payloadLen };
    case 'assign': {
      const j = json();
      const r = j.range;
      if (!Array.isArray(r) || r.length !== 2 || !r.every((x) => Number.isInteger(x) && x >= 0) || r[0] >= r[1]) {
        throw new WireError('WIRE_SHAPE', `assign frame with range ${JSON.stringify(r)}`);
      }
      return { kind, range: [r[0], r[1]], epoch: Number(j.epoch) || 0 };
    }
    case 'error': {
      const j = json();
      return { kind, code: String(j.code), message: String(j.message) };
    }
    case 'hello': {
      const j = json();
      const memoryBytes = Number(j.memoryBytes);
      const throughput = Number(j.throughput);
      if (!(memoryBytes >= 0) || !(throughput > 0) || !Number.isFinite(memoryBytes) || !Number.isFinite(throughput)) {
        throw new WireError('WIRE_SHAPE', `hello with memory ${j.memoryBytes} and throughput ${j.throughput}`);
      }
      return { kind, memoryBytes, throughput, peerKind: String(j.peerKind ?? '').slice(0, 32), adapter: String(j.adapter ?? '').slice(0, 256) };
    }
  }
}

/** The `[3, rows]` int32 MRoPE positions after the header. */
function readPositions(dv: DataView, rows: number): [Int32Array, Int32Array, Int32Array] {
  const positions: [Int32Array, Int32Array, Int32Array] = [new Int32Array(rows), new Int32Array(rows), new Int32Array(rows)];
  for (let a = 0; a < 3; a++) for (let i = 0; i < rows; i++) positions[a][i] = dv.getInt32(HEADER_BYTES + 4 * (a * rows + i), true);
  return positions;
}

/** The `prompt` frame's payload: JSON (ids and grids), padding to 4 bytes, f32 pixels. */
function decodePrompt(seq: number, jsonLen: number, rows: number, cols: number, payload: Uint8Array): PromptMessage {
  const bad = (why: string) => new WireError('WIRE_SHAPE', `prompt frame of sequence ${seq}: ${why}`);
  const pad = (4 - (jsonLen % 4)) % 4;
  if (jsonLen > payload.length || payload.length !== jsonLen + pad + 4 * rows * cols) throw bad(`${payload.length} payload bytes for ${jsonLen} of JSON and [${rows}, ${cols}] pixels`);
  let j: { inputIds?: unknown; images?: unknown; videos?: unknown };
  try {
    j = JSON.parse(new TextDecoder().decode(payload.subarray(0, jsonLen))) as typeof j;
  } catch {
    throw bad('its JSON does not parse');
  }
  const ids = j.inputIds;
  if (!Array.isArray(ids) || ids.length === 0 || !ids.every((x) => Number.isInteger(x) && x >= 0 && x < 2 ** 32)) throw bad('inputIds must be a non-empty list of token ids');
  const grids = (g: unknown, what: string): [number, number, number][] | null => {
    if (g === null || g === undefined) return null;
    if (!Array.isArray(g) || g.length === 0 || !g.every((x) => Array.isArray(x) && x.length === 3 && x.every((v) => Number.isInteger(v) && v > 0))) {
      throw bad(`${what} grids must be [t, h, w] lists of positive integers`);
    }
    return g as [number, number, number][];
  };
  const ig = grids(j.images, 'image');
  const vg = grids(j.videos, 'video');
  const rowsOf = (g: [number, number, number][] | null) => (g ?? []).reduce((n, [t, h, w]) => n + t * h * w, 0);
  if (rowsOf(ig) + rowsOf(vg) !== rows) throw bad(`grids cover ${rowsOf(ig) + rowsOf(vg)} pixel rows, the frame carries ${rows}`);
  const pixels = new Float32Array(rows * cols);
  const pv = new DataView(payload.buffer, payload.byteOffset + jsonLen + pad, 4 * rows * cols);
  for (let i = 0; i < pixels.length; i++) {
    const v = pv.getFloat32(4 * i, true);
    if (!Number.isFinite(v)) throw new WireError('WIRE_NAN', `non-finite pixel value in the prompt of sequence ${seq}`);
    pixels[i] = v;
  }
  const split = rowsOf(ig) * cols;
  return {
    kind: 'prompt',
    seq,
    inputIds: Uint32Array.from(ids as number[]),
    ...(ig ? { images: { pixelValues: pixels.subarray(0, split), grids: ig } } : {}),
    ...(vg ? { videos: { pixelValues: pixels.subarray(split), grids: vg } } : {}),
  };
}
