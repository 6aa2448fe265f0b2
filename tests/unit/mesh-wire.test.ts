/**
 * Mesh wire frames: round trips of every kind, the documented size (hidden × 2 bytes a token plus
 * a small header), and a typed WireError for each way a frame can be wrong.
 */
import { describe, expect, it } from 'vitest';
import { roundToF16 } from '../../shared/gpu/f16.ts';
import {
  crc32,
  decodeMessage,
  encodeMessage,
  frameBytes,
  HEADER_BYTES,
  type EmbedMessage,
  type MeshMessage,
  type PromptMessage,
  type TensorMessage,
  WireError,
} from '../../shared/mesh/wire.ts';

function tensor(rows: number, cols: number, dtype: 'f16' | 'f32' = 'f16'): TensorMessage {
  const hidden = Float32Array.from({ length: rows * cols }, (_, i) => Math.sin(i) * 3.7);
  const p = Int32Array.from({ length: rows }, (_, i) => 100 + i);
  return { kind: 'forward', seq: 7, chunk: 3, start: 42, positions: [p, p.map((x) => x + 1), p.map((x) => x + 2)], hidden, rows, cols, dtype };
}

function code(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(WireError);
    return (e as WireError).code;
  }
  return 'no error';
}

describe('mesh wire', () => {
  it('computes zlib CRC-32', () => {
    expect(crc32(new TextEncoder().encode('123456789'))).toBe(0xcbf43926);
    expect(crc32(new Uint8Array(0))).toBe(0);
  });

  it('round-trips hidden states as f16 (rounded) and f32 (exact), with positions', () => {
    const m = tensor(5, 32);
    const frame = encodeMessage(m);
    expect(frame.length).toBe(frameBytes(5, 32));
    expect(frame.length).toBe(HEADER_BYTES + 5 * 12 + 5 * 32 * 2);
    const d = decodeMessage(frame, { cols: 32 }) as TensorMessage;
    expect(d.kind).toBe('forward');
    expect([d.seq, d.chunk, d.start, d.rows, d.cols, d.dtype]).toEqual([7, 3, 42, 5, 32, 'f16']);
    expect(Array.from(d.positions[2])).toEqual([102, 103, 104, 105, 106]);
    expect(Array.from(d.hidden)).toEqual(Array.from(roundToF16(m.hidden)));
    const exact = decodeMessage(encodeMessage({ ...tensor(2, 8, 'f32'), kind: 'result', replay: true })) as TensorMessage;
    expect(Array.from(exact.hidden)).toEqual(Array.from(tensor(2, 8, 'f32').hidden));
    expect(exact.kind).toBe('result');
    expect(exact.replay).toBe(true);
  });

  it('costs hidden × 2 bytes per decoded token plus a small header', () => {
    // Qwen3-VL-2B: hidden 2048 → 4096 bytes of payload + 52 bytes of header and positions.
    expect(frameBytes(1, 2048)).toBe(2048 * 2 + 52);
    expect(encodeMessage(tensor(1, 2048)).length).toBe(4148);
  });

  it('round-trips the control messages', () => {
    const msgs: MeshMessage[] = [
      { kind: 'release', seq: 9 },
      { kind: 'ping', nonce: 123 },
      { kind: 'pong', nonce: 4_000_000_000 },
      { kind: 'probe', nonce: 77, bytes: 262144 },
      { kind: 'assign', range: [3, 9], epoch: 2 },
      { kind: 'error', code: 'KV_CACHE_FULL', message: 'no room — ünïcode' },
      { kind: 'hello', memoryBytes: 8e9, throughput: 1234.5, peerKind: 'node', adapter: 'llvmpipe' },
    ];
    for (const m of msgs) expect(decodeMessage(encodeMessage(m))).toEqual(m);
  });

  it('rejects wrong magic, version, length, shape, checksum and non-finite values', () => {
    const good = encodeMessage(tensor(2, 4));
    const patch = (at: number, v: number) => {
      const f = good.slice();
      f[at] = v;
      return f;
    };
    expect(code(() => decodeMessage(patch(0, 0)))).toBe('WIRE_MAGIC');
    expect(code(() => decodeMessage(patch(4, 9)))).toBe('WIRE_VERSION');
    expect(code(() => decodeMessage(good.subarray(0, good.length - 1)))).toBe('WIRE_LENGTH');
    expect(code(() => decodeMessage(good.subarray(0, 10)))).toBe('WIRE_LENGTH');
    expect(code(() => decodeMessage(good, { cols: 8 }))).toBe('WIRE_SHAPE');
    // One flipped payload bit.
    expect(code(() => decodeMessage(patch(good.length - 1, good[good.length - 1] ^ 1)))).toBe('WIRE_CHECKSUM');
    // A NaN with a valid checksum (a peer that computed garbage).
    const nan = tensor(2, 4);
    nan.hidden[5] = Number.NaN;
    expect(code(() => decodeMessage(encodeMessage(nan)))).toBe('WIRE_NAN');
    const inf = tensor(2, 4, 'f32');
    inf.hidden[0] = Number.POSITIVE_INFINITY;
    expect(code(() => decodeMessage(encodeMessage(inf)))).toBe('WIRE_NAN');
    // f16 overflow is caught too (70000 rounds to Inf in f16).
    const big = tensor(1, 4);
    big.hidden[1] = 70000;
    expect(code(() => decodeMessage(encodeMessage(big)))).toBe('WIRE_NAN');
    expect(code(() => encodeMessage({ ...tensor(2, 4), rows: 3 }))).toBe('WIRE_SHAPE');
    expect(code(() => decodeMessage(good, { cols: 4 }))).toBe('no error');
    expect(code(() => decodeMessage(encodeMessage({ kind: 'hello', memoryBytes: 1, throughput: 0, peerKind: 'node', adapter: '' })))).toBe('WIRE_SHAPE');
  });

  it('round-trips a head peer\'s prompt (ids, image and video pixels exact) and embed chunks (u32 ids, 4 bytes a token)', () => {
    const px = (rows: number, seed: number) => Float32Array.from({ length: rows * 6 }, (_, i) => Math.sin(seed + i) * 2.1);
    const prompt: PromptMessage = {
      kind: 'prompt',
      seq: 11,
      inputIds: Uint32Array.from([151644, 872, 198, 151655, 151655, 151645]),
      images: { pixelValues: px(8, 1), grids: [[1, 2, 2], [1, 2, 2]] },
      videos: { pixelValues: px(8, 2), grids: [[2, 2, 2]] },
    };
    const d = decodeMessage(encodeMessage(prompt)) as PromptMessage;
    expect(d).toEqual(prompt);
    // The JSON is padded so the f32 pixels are 4-byte aligned whatever its length.
    for (const ids of [[1], [1, 22], [1, 22, 333]]) {
      const p2: PromptMessage = { kind: 'prompt', seq: 1, inputIds: Uint32Array.from(ids), images: { pixelValues: px(4, 3), grids: [[1, 2, 2]] } };
      expect(decodeMessage(encodeMessage(p2))).toEqual(p2);
    }
    const textOnly: PromptMessage = { kind: 'prompt', seq: 2, inputIds: Uint32Array.of(5, 6) };
    expect(decodeMessage(encodeMessage(textOnly))).toEqual(textOnly);
    const p = Int32Array.of(40);
    const embed: EmbedMessage = { kind: 'embed', seq: 11, chunk: 9, start: 40, positions: [p, p, p], ids: Uint32Array.of(151645), rows: 1 };
    const frame = encodeMessage(embed);
    expect(frame.length).toBe(HEADER_BYTES + 12 + 4);
    expect(decodeMessage(frame)).toEqual(embed);
    expect(decodeMessage(encodeMessage({ ...embed, replay: true }))).toEqual({ ...embed, replay: true });
  });

  it('rejects prompts whose grids, pixels or JSON do not add up, and embeds of the wrong shape', () => {
    const base: PromptMessage = { kind: 'prompt', seq: 3, inputIds: Uint32Array.of(1, 2), images: { pixelValues: new Float32Array(24), grids: [[1, 2, 2]] } };
    expect(code(() => encodeMessage({ ...base, images: { pixelValues: new Float32Array(23), grids: [[1, 2, 2]] } }))).toBe('WIRE_SHAPE');
    const good = encodeMessage(base);
    const reframe = (mutate: (f: Uint8Array, dv: DataView) => void) => {
      const f = good.slice();
      const dv = new DataView(f.buffer);
      mutate(f, dv);
      // A valid checksum over the tampered frame: the shape checks must catch it.
      dv.setUint32(36, crc32(f.subarray(HEADER_BYTES), crc32(f.subarray(0, HEADER_BYTES - 4))), true);
      return f;
    };
    expect(code(() => decodeMessage(reframe((_, dv) => dv.setUint32(20, 5, true))))).toBe('WIRE_SHAPE'); // rows ≠ grids
    expect(code(() => decodeMessage(reframe((_, dv) => dv.setUint32(12, 3, true))))).toBe('WIRE_SHAPE'); // JSON length
    expect(code(() => decodeMessage(reframe((f) => (f[HEADER_BYTES] = 0x20))))).toBe('WIRE_SHAPE'); // JSON does not parse
    const nan = { ...base, images: { pixelValues: Float32Array.from({ length: 24 }, (_, i) => (i === 7 ? Number.NaN : i)), grids: [[1, 2, 2]] as [number, number, number][] } };
    expect(code(() => decodeMessage(encodeMessage(nan)))).toBe('WIRE_NAN');
    const p = Int32Array.of(0, 1);
    expect(code(() => encodeMessage({ kind: 'embed', seq: 1, chunk: 0, start: 0, positions: [p, p, p], ids: Uint32Array.of(1), rows: 2 }))).toBe('WIRE_SHAPE');
  });
});
