import { describe, expect, it } from 'vitest';
import { KvBlockManager, KvCacheFullError } from '../../shared/engine/kv-blocks.ts';
import { Rng } from '../support/random.ts';

describe('KV block manager', () => {
  it('maps positions to slots through each sequence table', () => {
    const m = new KvBlockManager({ numBlocks: 8, blockSize: 4 });
    expect(m.grow(1, 6)).toEqual({ start: 0, end: 6 });
    expect(m.grow(2, 3)).toEqual({ start: 0, end: 3 });
    expect(m.grow(1, 3)).toEqual({ start: 6, end: 9 });
    expect(m.blocks(1).length).toBe(3);
    for (let p = 0; p < 9; p++) {
      expect(m.slot(1, p)).toBe(m.blocks(1)[Math.floor(p / 4)] * 4 + (p % 4));
    }
    const all = new Set([...m.blocks(1), ...m.blocks(2)]);
    expect(all.size).toBe(4); // no block shared
    const { data, width } = m.tableArray([1, 2]);
    expect(width).toBe(3);
    expect(Array.from(data.subarray(3, 4))).toEqual([m.blocks(2)[0]]);
    expect(() => m.slot(2, 3)).toThrow(RangeError);
  });

  it('refuses to overcommit and changes nothing when full', () => {
    const m = new KvBlockManager({ numBlocks: 2, blockSize: 4 });
    m.grow(1, 5);
    expect(m.canGrow(2, 4)).toBe(false);
    expect(() => m.grow(2, 4)).toThrow(KvCacheFullError);
    expect(m.length(2)).toBe(0);
    expect(m.grow(1, 3)).toEqual({ start: 5, end: 8 }); // fits in the second block
    expect(m.usage).toBe(1);
    m.release(1);
    expect(m.freeBlocks).toBe(2);
  });

  it('never loses or duplicates blocks under random grow/release', () => {
    const rng = new Rng(3);
    const m = new KvBlockManager({ numBlocks: 50, blockSize: 3 });
    const live = new Set<number>();
    for (let step = 0; step < 2000; step++) {
      const seq = rng.int(0, 9);
      if (rng.next() < 0.3) {
        m.release(seq);
        live.delete(seq);
      } else if (m.canGrow(seq, rng.int(1, 7))) {
        m.grow(seq, 1);
        live.add(seq);
      }
      let used = 0;
      const seen = new Set<number>();
      for (const s of live) {
        for (const b of m.blocks(s)) {
          expect(seen.has(b)).toBe(false);
          seen.add(b);
        }
        used += m.blocks(s).length;
        expect(m.blocks(s).length).toBe(m.blocksFor(m.length(s)));
      }
      expect(used + m.freeBlocks).toBe(50);
    }
  });
});
