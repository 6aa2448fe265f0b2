/**
 * A pool of GPU buffers that reuses allocations by size class and usage.
 *
 * Size classes: up to 1 MiB sizes round up to a multiple of 256 bytes; above that to one of
 * eight steps per power of two (at most 12.5% slack). A released buffer waits on its class's
 * free list until `acquire` asks for that class again or `trim()` destroys it.
 */
export interface BufferPoolStats {
  /** Buffers created since the pool began. */
  created: number;
  /** Acquisitions served from a free list. */
  reused: number;
  /** Bytes in buffers handed out and not yet released. */
  bytesInUse: number;
  /** Bytes in buffers waiting on free lists. */
  bytesFree: number;
  /** Highest `bytesInUse + bytesFree` seen. */
  peakBytes: number;
}

export function sizeClass(bytes: number): number {
  const b = Math.max(16, Math.ceil(bytes));
  if (b <= 1 << 20) return Math.ceil(b / 256) * 256;
  const p = 2 ** Math.floor(Math.log2(b));
  const step = p / 8;
  return Math.ceil(b / step) * step;
}

export class BufferPool {
  private readonly free = new Map<string, GPUBuffer[]>();
  private readonly owned = new WeakMap<GPUBuffer, string>();
  readonly stats: BufferPoolStats = { created: 0, reused: 0, bytesInUse: 0, bytesFree: 0, peakBytes: 0 };

  constructor(
    private readonly create: (size: number, usage: GPUBufferUsageFlags, label: string) => GPUBuffer,
  ) {}

  /**
   * Returns a buffer of at least `bytes` bytes with exactly `usage`, labelled `label`. A free
   * buffer for which `avoid` returns true is passed over (a new one is created if no other fits).
   */
  acquire(bytes: number, usage: GPUBufferUsageFlags, label: string, avoid?: (buf: GPUBuffer) => boolean): GPUBuffer {
    const size = sizeClass(bytes);
    const key = `${usage}:${size}`;
    const list = this.free.get(key);
    let buf: GPUBuffer | undefined;
    if (list && avoid) {
      for (let i = list.length - 1; i >= 0; i--) {
        if (avoid(list[i])) continue;
        buf = list[i];
        list.splice(i, 1);
        break;
      }
    } else {
      buf = list?.pop();
    }
    if (buf) {
      this.stats.reused++;
      this.stats.bytesFree -= size;
      buf.label = label;
    } else {
      buf = this.create(size, usage, label);
      this.stats.created++;
    }
    this.owned.set(buf, key);
    this.stats.bytesInUse += size;
    this.stats.peakBytes = Math.max(this.stats.peakBytes, this.stats.bytesInUse + this.stats.bytesFree);
    return buf;
  }

  /** Gives a buffer back. Buffers the pool did not create are destroyed instead. */
  release(buf: GPUBuffer): void {
    const key = this.owned.get(buf);
    if (key === undefined) {
      buf.destroy();
      return;
    }
    this.owned.delete(buf);
    this.stats.bytesInUse -= buf.size;
    this.stats.bytesFree += buf.size;
    let list = this.free.get(key);
    if (!list) {
      list = [];
      this.free.set(key, list);
    }
    list.push(buf);
  }

  /** Destroys every buffer on the free lists. */
  trim(): void {
    for (const list of this.free.values()) for (const b of list) b.destroy();
    this.free.clear();
    this.stats.bytesFree = 0;
  }
}
