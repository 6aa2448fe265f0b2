import { describe, expect, it } from 'vitest';
import { BufferPool, sizeClass } from '../../shared/gpu/buffer-pool.ts';
import { packUniforms, splitWorkgroups } from '../../shared/gpu/program.ts';

describe('buffer pool', () => {
  it('size classes are ≥ the request, 256-byte steps below 1 MiB, ≤ 12.5% slack above', () => {
    expect(sizeClass(1)).toBe(256);
    expect(sizeClass(256)).toBe(256);
    expect(sizeClass(257)).toBe(512);
    for (const b of [1 << 20, (1 << 20) + 1, 3_000_001, 123_456_789]) {
      const c = sizeClass(b);
      expect(c).toBeGreaterThanOrEqual(b);
      expect(c / b).toBeLessThanOrEqual(1.125 + 1e-9);
    }
  });

  it('reuses released buffers of the same class and usage', () => {
    let created = 0;
    const destroyed: number[] = [];
    const fake = (size: number) => {
      const id = created++;
      return { size, label: '', destroy: () => destroyed.push(id) } as unknown as GPUBuffer;
    };
    const pool = new BufferPool((size) => fake(size));
    const a = pool.acquire(1000, 0x80, 'a');
    pool.release(a);
    const b = pool.acquire(900, 0x80, 'b'); // same 1024-byte class
    expect(b).toBe(a);
    expect(b.label).toBe('b');
    const c = pool.acquire(900, 0x40, 'c'); // other usage: new buffer
    expect(c).not.toBe(a);
    expect(pool.stats).toMatchObject({ created: 2, reused: 1, bytesInUse: 2048 });
    pool.release(b);
    pool.release(c);
    pool.trim();
    expect(destroyed.sort()).toEqual([0, 1]);
    expect(pool.stats.bytesFree).toBe(0);
  });
});

describe('program helpers', () => {
  it('packs uniforms little-endian in declaration order, padded to 16 bytes', () => {
    const buf = packUniforms([{ u32: 7 }, { i32: -3 }, { f32: 1.5 }, { u32: 0xffffffff }, { u32: 1 }]);
    expect(buf.byteLength).toBe(32);
    const v = new DataView(buf);
    expect(v.getUint32(0, true)).toBe(7);
    expect(v.getInt32(4, true)).toBe(-3);
    expect(v.getFloat32(8, true)).toBe(1.5);
    expect(v.getUint32(12, true)).toBe(0xffffffff);
    expect(v.getUint32(16, true)).toBe(1);
  });

  it('splits workgroup counts above the per-dimension limit', () => {
    expect(splitWorkgroups(10)).toEqual([10, 1, 1]);
    const [x, y] = splitWorkgroups(200_000, 65535);
    expect(x).toBeLessThanOrEqual(65535);
    expect(x * y).toBeGreaterThanOrEqual(200_000);
  });
});
