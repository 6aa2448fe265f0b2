import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  decodeVisionEmbedding,
  encodeVisionEmbedding,
  MemoryVisionCache,
  type VisionEmbedding,
  VisionCacheDecodeError,
  visionCacheKey,
  visionEmbeddingBytes,
} from '../../shared/engine/vision-cache.ts';
import { ShapeError, VlmeshError } from '../../shared/errors.ts';
import { Rng } from '../support/random.ts';

/** A random [tokens, hidden] embedding with `levels` DeepStack levels. */
function embedding(tokens: number, hidden: number, levels: number, seed = 1): VisionEmbedding {
  const rng = new Rng(seed);
  return { tokens, hidden, merged: rng.normals(tokens * hidden), deepstack: Array.from({ length: levels }, () => rng.normals(tokens * hidden)) };
}

/** Bit patterns, so NaN payloads and −0 compare exactly. */
const bits = (a: Float32Array) => Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));

function expectSameBits(got: VisionEmbedding, want: VisionEmbedding): void {
  expect([got.tokens, got.hidden, got.deepstack.length]).toEqual([want.tokens, want.hidden, want.deepstack.length]);
  expect(bits(got.merged)).toEqual(bits(want.merged));
  for (let l = 0; l < want.deepstack.length; l++) expect(bits(got.deepstack[l]), `deepstack[${l}]`).toEqual(bits(want.deepstack[l]));
}

describe('visionCacheKey', () => {
  const bytes = new Uint8Array([137, 80, 78, 71, 1, 2, 3, 4, 5]);
  const params = { minPixels: 3136, maxPixels: 12845056, patchSize: 16, mergeSize: 2, mean: [0.5, 0.5, 0.5], resize: { mode: 'smart', factor: 32 } };
  const base = { modelId: 'Qwen/Qwen3-VL-2B-Instruct@abc123', bytes, params };

  it('is the documented SHA-256 over length-prefixed fields', async () => {
    const u64 = (n: number) => {
      const b = Buffer.alloc(8);
      b.writeBigUInt64LE(BigInt(n));
      return b;
    };
    const fields = [
      Buffer.from('vlmesh/vision-key/v1'),
      Buffer.from(base.modelId),
      Buffer.from('{"maxPixels":12845056,"mean":[0.5,0.5,0.5],"mergeSize":2,"minPixels":3136,"patchSize":16,"resize":{"factor":32,"mode":"smart"}}'),
      Buffer.from(bytes),
    ];
    const h = createHash('sha256');
    for (const f of fields) h.update(u64(f.length)).update(f);
    const key = await visionCacheKey(base);
    expect(key).toMatch(/^[0-9a-f]{64}$/);
    expect(key).toBe(h.digest('hex'));
  });

  it('is stable and ignores key order, at every depth', async () => {
    const k = await visionCacheKey(base);
    expect(await visionCacheKey({ ...base, bytes: bytes.slice() })).toBe(k);
    const reordered = { resize: { factor: 32, mode: 'smart' }, mean: [0.5, 0.5, 0.5], patchSize: 16, mergeSize: 2, maxPixels: 12845056, minPixels: 3136 };
    expect(await visionCacheKey({ ...base, params: reordered })).toBe(k);
    // A key whose value is undefined is the same as no key (as in JSON).
    expect(await visionCacheKey({ ...base, params: { ...params, extra: undefined } })).toBe(k);
    // A typed array keys like the plain array of its values.
    expect(await visionCacheKey({ ...base, params: { ...params, mean: new Float32Array([0.5, 0.5, 0.5]) } })).toBe(k);
  });

  it('changes with the bytes, every parameter and the model', async () => {
    const k = await visionCacheKey(base);
    const flipped = bytes.slice();
    flipped[8] ^= 1;
    const variants = [
      { ...base, bytes: flipped },
      { ...base, bytes: bytes.subarray(0, 8) },
      { ...base, modelId: 'Qwen/Qwen3-VL-4B-Instruct@abc123' },
      { ...base, params: { ...params, maxPixels: 12845057 } },
      { ...base, params: { ...params, mean: [0.5, 0.5, 0.48] } },
      { ...base, params: { ...params, resize: { mode: 'smart', factor: 28 } } },
      { ...base, params: { ...params, patchSize: '16' } }, // a string is not the number
      { ...base, params: { ...params, extra: null } },
    ];
    const keys = await Promise.all(variants.map((v) => visionCacheKey(v)));
    expect(new Set([k, ...keys]).size).toBe(variants.length + 1);
  });

  it('never collides when the same bytes split differently across fields', async () => {
    const enc = (s: string) => new TextEncoder().encode(s);
    const a = await visionCacheKey({ modelId: 'ab', bytes: enc('c'), params: {} });
    const b = await visionCacheKey({ modelId: 'a', bytes: enc('bc'), params: {} });
    const c = await visionCacheKey({ modelId: 'abc', bytes: enc(''), params: {} });
    // Unprefixed, both of these would hash "m{}{}X".
    const d = await visionCacheKey({ modelId: 'm', bytes: enc('{}X'), params: {} });
    const e = await visionCacheKey({ modelId: 'm{}', bytes: enc('X'), params: {} });
    expect(new Set([a, b, c, d, e]).size).toBe(5);
  });

  it('refuses params with no stable encoding', async () => {
    await expect(visionCacheKey({ ...base, params: { x: Number.NaN } })).rejects.toThrow(TypeError);
    await expect(visionCacheKey({ ...base, params: { x: Number.POSITIVE_INFINITY } })).rejects.toThrow(/params\.x/);
    await expect(visionCacheKey({ ...base, params: { m: new Map([['a', 1]]) } })).rejects.toThrow(/Map/);
    await expect(visionCacheKey({ ...base, params: { f: () => 1 } })).rejects.toThrow(TypeError);
    await expect(visionCacheKey({ ...base, params: { a: [1, undefined] } })).rejects.toThrow(/params\.a\[1\]/);
  });
});

describe('vision embedding binary format', () => {
  it('round-trips bit for bit, NaN payloads, −0, infinities and subnormals included', () => {
    const e = embedding(3, 5, 3, 7);
    const special = new Uint32Array(e.merged.buffer);
    special[0] = 0x7fc00001; // quiet NaN with a payload
    special[1] = 0xffa5a5a5; // negative signalling-style NaN
    special[2] = 0x80000000; // −0
    special[3] = 0x7f800000; // +Inf
    special[4] = 0x00000001; // smallest subnormal
    new Uint32Array(e.deepstack[2].buffer)[14] = 0x7f812345;
    const bytes = encodeVisionEmbedding(e);
    expect(bytes.length).toBe(24 + 4 * 15 * 4);
    expect(Array.from(bytes.subarray(0, 4))).toEqual([0x56, 0x4c, 0x56, 0x45]); // "VLVE"
    expectSameBits(decodeVisionEmbedding(bytes), e);
    expect(Object.is(decodeVisionEmbedding(bytes).merged[2], -0)).toBe(true);
  });

  it('decodes from any byte offset and returns arrays that do not alias the input', () => {
    const e = embedding(4, 6, 2, 3);
    const enc = encodeVisionEmbedding(e);
    const shifted = new Uint8Array(enc.length + 3);
    shifted.set(enc, 1);
    const d = decodeVisionEmbedding(shifted.subarray(1, 1 + enc.length));
    expectSameBits(d, e);
    shifted.fill(0);
    expectSameBits(d, e);
  });

  it('encodes from subarray views and with no DeepStack level', () => {
    const big = new Rng(5).normals(40);
    const e: VisionEmbedding = { tokens: 2, hidden: 3, merged: big.subarray(7, 13), deepstack: [] };
    const d = decodeVisionEmbedding(encodeVisionEmbedding(e));
    expect(d.deepstack).toEqual([]);
    expect(bits(d.merged)).toEqual(bits(big.subarray(7, 13)));
  });

  it('refuses an embedding whose arrays do not match its dims', () => {
    const e = embedding(2, 4, 2);
    expect(() => encodeVisionEmbedding({ ...e, hidden: 5 })).toThrow(ShapeError);
    expect(() => encodeVisionEmbedding({ ...e, deepstack: [e.deepstack[0], new Float32Array(7)] })).toThrow(/deepstack\[1\]/);
    expect(() => encodeVisionEmbedding({ ...e, tokens: 1.5 })).toThrow(ShapeError);
  });

  it('turns short, foreign, newer and corrupt values into a typed error', () => {
    const good = encodeVisionEmbedding(embedding(2, 3, 1));
    const tamper = (f: (b: Uint8Array, dv: DataView) => void) => {
      const b = good.slice();
      f(b, new DataView(b.buffer));
      return b;
    };
    const cases: [string, Uint8Array, VisionCacheDecodeError['reason']][] = [
      ['empty', new Uint8Array(0), 'short'],
      ['header cut', good.subarray(0, 23), 'short'],
      ['foreign', new TextEncoder().encode('{"hello":"this is JSON, not an embedding"}'), 'magic'],
      ['newer version', tamper((_, dv) => dv.setUint16(4, 2, true)), 'version'],
      ['other dtype', tamper((_, dv) => dv.setUint16(6, 2, true)), 'dtype'],
      ['truncated payload', good.subarray(0, good.length - 1), 'length'],
      ['trailing byte', (() => { const b = new Uint8Array(good.length + 1); b.set(good); return b; })(), 'length'],
      ['tokens changed', tamper((_, dv) => dv.setUint32(8, 3, true)), 'length'],
      ['levels changed', tamper((_, dv) => dv.setUint32(16, 0, true)), 'length'],
      ['huge dims', tamper((_, dv) => { dv.setUint32(8, 0xffffffff, true); dv.setUint32(12, 0xffffffff, true); }), 'length'],
    ];
    for (const [what, bytes, reason] of cases) {
      let err: unknown;
      try {
        decodeVisionEmbedding(bytes);
      } catch (e) {
        err = e;
      }
      expect(err, what).toBeInstanceOf(VisionCacheDecodeError);
      expect(err, what).toBeInstanceOf(VlmeshError);
      expect((err as VisionCacheDecodeError).reason, what).toBe(reason);
      expect((err as VisionCacheDecodeError).code, what).toBe('VISION_CACHE_DECODE');
    }
  });
});

describe('MemoryVisionCache', () => {
  // Every test embedding here is [2, 4] with 1 DeepStack level: 2 · 8 · 4 = 64 bytes.
  const unit = () => embedding(2, 4, 1);
  const UNIT = 64;

  it('counts hits and misses and returns what was stored', async () => {
    const c = new MemoryVisionCache();
    const e = unit();
    expect(await c.get('a')).toBeNull();
    await c.set('a', e);
    expect(await c.get('a')).toBe(e);
    expect(await c.get('a')).toBe(e);
    expect(await c.get('b')).toBeNull();
    expect(c.stats).toEqual({ hits: 2, misses: 2, errors: 0, entries: 1, bytes: UNIT });
    expect(visionEmbeddingBytes(e)).toBe(UNIT);
  });

  it('evicts the least recently used values, by bytes', async () => {
    const c = new MemoryVisionCache({ maxBytes: 3 * UNIT });
    for (const k of ['a', 'b', 'c']) await c.set(k, unit());
    await c.get('a'); // a is now the most recently used; b is the least
    await c.set('d', unit());
    expect(await c.get('b')).toBeNull();
    for (const k of ['a', 'c', 'd']) expect(await c.get(k), k).not.toBeNull();
    expect(c.stats).toMatchObject({ entries: 3, bytes: 3 * UNIT });
    // A value two units large pushes out the two least recently used (a, then c).
    await c.set('big', embedding(4, 4, 1));
    expect(c.stats).toMatchObject({ entries: 2, bytes: 3 * UNIT });
    expect(await c.get('a')).toBeNull();
    expect(await c.get('c')).toBeNull();
    expect(await c.get('d')).not.toBeNull();
    expect(await c.get('big')).not.toBeNull();
  });

  it('replacing a key charges only the new value', async () => {
    const c = new MemoryVisionCache({ maxBytes: 4 * UNIT });
    await c.set('a', unit());
    await c.set('b', unit());
    const bigger = embedding(4, 4, 1);
    await c.set('a', bigger);
    expect(c.stats).toMatchObject({ entries: 2, bytes: 3 * UNIT });
    expect(await c.get('a')).toBe(bigger);
  });

  it('does not store a value larger than maxBytes, and keeps the others', async () => {
    const c = new MemoryVisionCache({ maxBytes: 2 * UNIT });
    await c.set('a', unit());
    await c.set('too-big', embedding(3, 6, 1)); // 3·6·2·4 = 144 bytes > 128
    expect(await c.get('too-big')).toBeNull();
    expect(c.stats).toMatchObject({ entries: 1, bytes: UNIT });
    expect(await c.get('a')).not.toBeNull();
    await c.set('exact', embedding(4, 4, 1)); // 128 bytes: fits, alone
    expect(c.stats).toMatchObject({ entries: 1, bytes: 2 * UNIT });
    expect(await c.get('exact')).not.toBeNull();
  });

  it('expires values ttlMs after they were set; reads do not extend them', async () => {
    let now = 1_000_000;
    const c = new MemoryVisionCache({ ttlMs: 1000, now: () => now });
    await c.set('a', unit());
    now += 500;
    await c.set('b', unit());
    now += 499;
    expect(await c.get('a')).not.toBeNull(); // 999 ms old
    now += 1;
    expect(await c.get('a')).toBeNull(); // 1000 ms old: gone, despite the read just before
    expect(c.stats).toMatchObject({ entries: 1, bytes: UNIT, hits: 1, misses: 1 });
    now += 499;
    expect(await c.get('b')).not.toBeNull();
    now += 1;
    expect(c.stats).toMatchObject({ entries: 0, bytes: 0 }); // expired entries leave the counts too
    expect(await c.get('b')).toBeNull();
  });

  it('frees expired values before evicting live ones', async () => {
    let now = 0;
    const c = new MemoryVisionCache({ maxBytes: 2 * UNIT, ttlMs: 100, now: () => now });
    await c.set('old', unit());
    now = 60;
    await c.set('live', unit());
    await c.get('old'); // most recently used, but expires first
    now = 120;
    await c.set('new', unit());
    expect(await c.get('live')).not.toBeNull();
    expect(await c.get('new')).not.toBeNull();
  });

  it('matches a reference LRU under random use', async () => {
    const rng = new Rng(11);
    const maxBytes = 10 * UNIT;
    const c = new MemoryVisionCache({ maxBytes });
    const ref: { key: string; bytes: number }[] = []; // least recently used first
    const sizes = [1, 2, 3, 5, 11]; // in units; 11 never fits
    for (let step = 0; step < 2000; step++) {
      const key = `k${rng.int(0, 14)}`;
      if (rng.next() < 0.5) {
        const got = await c.get(key);
        const i = ref.findIndex((r) => r.key === key);
        expect(got !== null, `step ${step} get ${key}`).toBe(i >= 0);
        if (i >= 0) ref.push(...ref.splice(i, 1));
      } else {
        const units = rng.pick(sizes);
        await c.set(key, embedding(2 * units, 4, 1, step)); // units · 64 bytes
        const i = ref.findIndex((r) => r.key === key);
        if (i >= 0) ref.splice(i, 1);
        if (units * UNIT <= maxBytes) {
          while (ref.reduce((s, r) => s + r.bytes, 0) + units * UNIT > maxBytes) ref.shift();
          ref.push({ key, bytes: units * UNIT });
        }
      }
      expect(c.stats.bytes).toBe(ref.reduce((s, r) => s + r.bytes, 0));
      expect(c.stats.entries).toBe(ref.length);
    }
  });

  it('rejects a malformed value and bad options; close empties it', async () => {
    const c = new MemoryVisionCache();
    await expect(c.set('a', { ...unit(), tokens: 3 })).rejects.toThrow(ShapeError);
    expect(() => new MemoryVisionCache({ maxBytes: -1 })).toThrow(RangeError);
    expect(() => new MemoryVisionCache({ ttlMs: 0 })).toThrow(RangeError);
    await c.set('a', unit());
    await c.close();
    expect(await c.get('a')).toBeNull();
    expect(c.stats).toMatchObject({ entries: 0, bytes: 0 });
  });
});
