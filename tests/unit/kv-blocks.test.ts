import { describe, expect, it } from 'vitest';
import { KvBlockManager, KvCacheFullError, prefixBlockHashes } from '../../shared/engine/kv-blocks.ts';
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

  it('hashes full blocks by content and by everything before them', () => {
    const a = prefixBlockHashes([1, 2, 3, 4, 5, 6, 7, 8, 9], 4);
    expect(a.length).toBe(2); // the partial third block has no hash
    expect(prefixBlockHashes([1, 2, 3, 4, 5, 6, 7, 8], 4)).toEqual(a);
    const b = prefixBlockHashes([1, 2, 3, 0, 5, 6, 7, 8], 4);
    expect(b[0]).not.toBe(a[0]);
    expect(b[1]).not.toBe(a[1]); // same tokens, different prefix
    // Same pad ids, different image: different hashes from the first block holding the image.
    const img = (key: string) => (p: number) => (p >= 4 ? key : undefined);
    const c = prefixBlockHashes([1, 2, 3, 4, 9, 9, 9, 9], 4, img('imgA'));
    const d = prefixBlockHashes([1, 2, 3, 4, 9, 9, 9, 9], 4, img('imgB'));
    expect(c[0]).toBe(d[0]);
    expect(c[1]).not.toBe(d[1]);
    expect(a[0]).toMatch(/^[0-9a-f]{32}$/);
  });

  it('reuses cached full blocks of a shared prefix and evicts least recently used first', () => {
    const m = new KvBlockManager({ numBlocks: 6, blockSize: 4 });
    const ids = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
    const h = prefixBlockHashes(ids, 4);
    expect(m.adoptPrefix(1, h)).toBe(0);
    m.grow(1, ids.length);
    m.commit(1, 0, h[0]);
    m.commit(1, 1, h[1]);
    expect(() => m.commit(1, 2, 'x')).toThrow(RangeError); // block 2 is not full
    const first = m.blocks(1).slice(0, 2);
    // A concurrent sequence with the same prefix shares the blocks.
    expect(m.adoptPrefix(2, h)).toBe(8);
    expect(m.blocks(2)).toEqual(first);
    m.grow(2, 3);
    expect(m.blocks(2).length).toBe(3);
    expect(m.blocks(2)[2]).not.toBe(m.blocks(1)[2]); // appends go to an own block
    expect(m.usage).toBeCloseTo(4 / 6);
    m.release(1);
    m.release(2);
    expect(m.freeBlocks).toBe(6);
    expect(m.cachedBlocks).toBe(2);
    expect(m.prefixStats).toMatchObject({ queried: 4, hits: 2 });
    // After release the contents stay: a later sequence still hits.
    expect(m.adoptPrefix(3, h.slice(0, 1))).toBe(4);
    expect(m.blocks(3)).toEqual([first[0]]);
    m.release(3);
    // Filling the cache evicts the idle cached blocks only when no never-used block is left:
    // the later block of the sequence goes first.
    m.grow(4, 4 * 4);
    expect(m.cachedBlocks).toBe(2);
    m.grow(4, 4);
    expect(m.prefixStats.evictions).toBe(1);
    expect(m.matchPrefix(h)).toBe(1);
    expect(() => m.grow(5, 4)).not.toThrow();
    expect(m.matchPrefix(h)).toBe(0);
    expect(() => m.grow(6, 1)).toThrow(KvCacheFullError);
  });

  it('fork keeps the full blocks of a finished sequence warm until released', () => {
    const m = new KvBlockManager({ numBlocks: 4, blockSize: 2 });
    const ids = [7, 7, 8, 8, 9];
    const h = prefixBlockHashes(ids, 2);
    m.grow(1, 5);
    h.forEach((x, i) => {
      m.commit(1, i, x);
    });
    m.fork(1, 100, 99);
    expect(m.length(100)).toBe(4);
    m.release(1);
    // Pinned: a full cache cannot evict them.
    expect(m.freeBlocks).toBe(2);
    expect(() => m.grow(2, 6)).toThrow(KvCacheFullError);
    expect(m.adoptPrefix(3, h)).toBe(4);
    m.release(3);
    m.release(100);
    expect(m.freeBlocks).toBe(4);
    expect(m.matchPrefix(h)).toBe(2);
  });

  it('keeps reference counts consistent under random sharing', () => {
    const rng = new Rng(11);
    const m = new KvBlockManager({ numBlocks: 24, blockSize: 2 });
    const prompts = [
      [1, 2, 3, 4, 5, 6],
      [1, 2, 3, 4, 9, 9],
      [5, 5, 5, 5],
    ];
    const live = new Map<number, number[]>();
    for (let step = 0; step < 3000; step++) {
      const seq = rng.int(0, 7);
      if (live.has(seq)) {
        if (rng.next() < 0.4) {
          m.release(seq);
          live.delete(seq);
        } else if (m.canGrow(seq, 1)) m.grow(seq, 1);
      } else {
        const ids = prompts[rng.int(0, prompts.length - 1)];
        const h = prefixBlockHashes(ids, 2);
        const got = m.adoptPrefix(seq, h);
        if (!m.canGrow(seq, ids.length - got)) {
          m.release(seq);
          continue;
        }
        m.grow(seq, ids.length - got);
        h.forEach((x, i) => {
          m.commit(seq, i, x);
        });
        live.set(seq, ids);
      }
      // Every block referenced by a live sequence is distinct from the free ones.
      const used = new Set<number>();
      for (const s of live.keys()) for (const b of m.blocks(s)) used.add(b);
      expect(used.size + m.freeBlocks).toBe(24);
    }
  });
});
