/**
 * Mesh layer placement: the plan's bottleneck equals a brute-force optimum on small random cases,
 * memory is respected, the head keeps its DeepStack layers, replans move as few layers as the
 * brute force says they can, and impossible meshes fail with a clear PlacementError.
 */
import { describe, expect, it } from 'vitest';
import {
  movedLayers,
  type PeerCapacity,
  type Plan,
  PlacementError,
  type PlacementModel,
  placeLayers,
  stageThroughput,
} from '../../shared/mesh/placement.ts';

/** Deterministic PRNG (mulberry32). */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Every assignment of layer counts (head first, in the given order); best bottleneck and, among those, least movement. */
function bruteForce(m: PlacementModel, order: PeerCapacity[], previous?: Plan): { bottleneck: number; moved: number } | null {
  const L = m.numLayers;
  const cap = (p: PeerCapacity, i: number) => {
    const free = p.memoryBytes - (i === 0 ? m.headBytes : 0);
    return free < 0 ? -1 : Math.floor(free / m.layerBytes);
  };
  let best: { bottleneck: number; moved: number } | null = null;
  const counts: number[] = [];
  const rec = (i: number, left: number) => {
    if (i === order.length) {
      if (left !== 0) return;
      let b = Number.POSITIVE_INFINITY;
      const stages: Plan['stages'] = [];
      let at = 0;
      counts.forEach((n, k) => {
        if (n > 0) {
          b = Math.min(b, stageThroughput(order[k].throughput, n));
          stages.push({ peer: order[k].id, range: [at, at + n] });
          at += n;
        }
      });
      const moved = previous ? movedLayers(previous, { stages, bottleneck: b }) : 0;
      const eps = 1e-12 * b;
      if (!best || b > best.bottleneck + eps || (Math.abs(b - best.bottleneck) <= eps && moved < best.moved)) best = { bottleneck: b, moved };
      return;
    }
    const lo = i === 0 ? Math.max(1, m.headMinLayers) : 0;
    for (let n = lo; n <= Math.min(left, cap(order[i], i)); n++) {
      counts.push(n);
      rec(i + 1, left - n);
      counts.pop();
    }
  };
  rec(0, L);
  return best;
}

function checkPlan(m: PlacementModel, peers: PeerCapacity[], plan: Plan, head: string): void {
  expect(plan.stages[0].peer).toBe(head);
  expect(plan.stages[0].range[0]).toBe(0);
  expect(plan.stages[0].range[1]).toBeGreaterThanOrEqual(m.headMinLayers);
  let at = 0;
  const seen = new Set<string>();
  for (const s of plan.stages) {
    expect(s.range[0]).toBe(at);
    expect(s.range[1]).toBeGreaterThan(s.range[0]);
    at = s.range[1];
    expect(seen.has(s.peer)).toBe(false);
    seen.add(s.peer);
    const p = peers.find((q) => q.id === s.peer)!;
    const need = (s.range[1] - s.range[0]) * m.layerBytes + (s.peer === head ? m.headBytes : 0);
    expect(need).toBeLessThanOrEqual(p.memoryBytes);
  }
  expect(at).toBe(m.numLayers);
}

describe('placeLayers', () => {
  it('matches the brute-force optimum on random small meshes, within every memory limit', () => {
    const r = rng(7);
    let checked = 0;
    for (let trial = 0; trial < 300; trial++) {
      const L = 1 + Math.floor(r() * 8);
      const m: PlacementModel = { numLayers: L, layerBytes: 10, headBytes: Math.floor(r() * 30), headMinLayers: Math.floor(r() * Math.min(3, L + 1)) };
      const peers: PeerCapacity[] = Array.from({ length: 1 + Math.floor(r() * 4) }, (_, i) => ({
        id: `p${i}`,
        memoryBytes: Math.floor(r() * 60),
        throughput: 1 + Math.floor(r() * 100),
      }));
      const want = bruteForce(m, peers);
      if (!want) {
        expect(() => placeLayers(m, peers, { head: 'p0' })).toThrow(PlacementError);
        continue;
      }
      const plan = placeLayers(m, peers, { head: 'p0' });
      checkPlan(m, peers, plan, 'p0');
      expect(plan.bottleneck).toBeCloseTo(want.bottleneck, 9);
      checked++;
    }
    expect(checked).toBeGreaterThan(100);
  });

  it('gives faster peers more layers and keeps the DeepStack layers on the head', () => {
    const m: PlacementModel = { numLayers: 6, layerBytes: 1, headBytes: 0, headMinLayers: 2 };
    const peers = [
      { id: 'A', memoryBytes: 100, throughput: 30 },
      { id: 'B', memoryBytes: 100, throughput: 20 },
      { id: 'C', memoryBytes: 100, throughput: 10 },
    ];
    const plan = placeLayers(m, peers, { head: 'A' });
    expect(plan.stages).toEqual([
      { peer: 'A', range: [0, 3] },
      { peer: 'B', range: [3, 5] },
      { peer: 'C', range: [5, 6] },
    ]);
    expect(plan.bottleneck).toBe(10);
    // A slow head still holds the DeepStack layers.
    const slowHead = placeLayers(m, [{ id: 'H', memoryBytes: 100, throughput: 1 }, ...peers], { head: 'H' });
    expect(slowHead.stages[0]).toEqual({ peer: 'H', range: [0, 2] });
  });

  it('respects memory even when it costs throughput', () => {
    const m: PlacementModel = { numLayers: 4, layerBytes: 100, headBytes: 50, headMinLayers: 1 };
    // The fast head holds only one layer; the slow peer must take three.
    const plan = placeLayers(m, [{ id: 'fast', memoryBytes: 199, throughput: 100 }, { id: 'slow', memoryBytes: 1000, throughput: 3 }], { head: 'fast' });
    expect(plan.stages).toEqual([
      { peer: 'fast', range: [0, 1] },
      { peer: 'slow', range: [1, 4] },
    ]);
    expect(plan.bottleneck).toBe(1);
  });

  it('fails clearly when the mesh cannot hold the model or the head its part', () => {
    const m: PlacementModel = { numLayers: 10, layerBytes: 100, headBytes: 500, headMinLayers: 2 };
    expect(() => placeLayers(m, [{ id: 'a', memoryBytes: 900, throughput: 1 }, { id: 'b', memoryBytes: 300, throughput: 1 }], { head: 'a' })).toThrow(
      /holds 7 of 10 layers/,
    );
    expect(() => placeLayers(m, [{ id: 'a', memoryBytes: 600, throughput: 1 }, { id: 'b', memoryBytes: 5000, throughput: 1 }], { head: 'a' })).toThrow(
      /DeepStack/,
    );
    expect(() => placeLayers(m, [{ id: 'a', memoryBytes: 600, throughput: 0 }], { head: 'a' })).toThrow(PlacementError);
    expect(() => placeLayers(m, [{ id: 'a', memoryBytes: 6000, throughput: 1 }], { head: 'x' })).toThrow(/not among the peers/);
  });

  it('replans after a leave or a join with the least movement the brute force finds', () => {
    const r = rng(11);
    for (let trial = 0; trial < 150; trial++) {
      const L = 2 + Math.floor(r() * 7);
      const m: PlacementModel = { numLayers: L, layerBytes: 1, headBytes: 0, headMinLayers: Math.floor(r() * 2) };
      const peers: PeerCapacity[] = Array.from({ length: 2 + Math.floor(r() * 3) }, (_, i) => ({ id: `p${i}`, memoryBytes: 100, throughput: 1 + Math.floor(r() * 5) }));
      const before = placeLayers(m, peers, { head: 'p0' });
      // Someone leaves (never the head), or someone joins.
      const leave = r() < 0.6 && peers.length > 1;
      const after = leave
        ? peers.filter((p) => p.id !== before.stages[before.stages.length - 1].peer || p.id === 'p0')
        : [...peers, { id: 'new', memoryBytes: 100, throughput: 1 + Math.floor(r() * 5) }];
      const plan = placeLayers(m, after, { head: 'p0', previous: before });
      checkPlan(m, after, plan, 'p0');
      // Brute force over the same order (head, survivors in their order, newcomers last).
      const prevOrder = before.stages.map((s) => s.peer);
      const order = [...after].sort((a, b) => {
        const ra = a.id === 'p0' ? -1 : prevOrder.includes(a.id) ? prevOrder.indexOf(a.id) : prevOrder.length;
        const rb = b.id === 'p0' ? -1 : prevOrder.includes(b.id) ? prevOrder.indexOf(b.id) : prevOrder.length;
        return ra - rb;
      });
      const want = bruteForce(m, order, before)!;
      expect(plan.bottleneck).toBeCloseTo(want.bottleneck, 9);
      expect(movedLayers(before, plan)).toBe(want.moved);
    }
  });

  it('moves the departed peer’s layers and as few others as the throughput allows', () => {
    const m: PlacementModel = { numLayers: 12, layerBytes: 1, headBytes: 0, headMinLayers: 0 };
    const peers = ['A', 'B', 'C', 'D'].map((id) => ({ id, memoryBytes: 100, throughput: 12 }));
    const before = placeLayers(m, peers, { head: 'A' });
    expect(before.stages.map((s) => s.range)).toEqual([
      [0, 3],
      [3, 6],
      [6, 9],
      [9, 12],
    ]);
    const after = placeLayers(m, peers.filter((p) => p.id !== 'C'), { head: 'A', previous: before });
    expect(after.bottleneck).toBe(3);
    // Each survivor must take 4: C's three layers move, and one more boundary shifts.
    expect(movedLayers(before, after)).toBe(4);
    expect(after.stages.map((s) => s.range[1] - s.range[0])).toEqual([4, 4, 4]);
    // A faster newcomer takes layers without disturbing more than it must.
    const joined = placeLayers(m, [...peers, { id: 'E', memoryBytes: 100, throughput: 24 }], { head: 'A', previous: before });
    expect(joined.stages.at(-1)!.peer).toBe('E');
    expect(joined.bottleneck).toBe(6); // A, B, C, D take 2 layers each, E 4
  });

  it('places layers behind a head that is not part of the placement (the coordinator’s remote stages)', () => {
    const m: PlacementModel = { numLayers: 5, layerBytes: 1, headBytes: 0, headMinLayers: 0 };
    const plan = placeLayers(m, [{ id: 'x', memoryBytes: 9, throughput: 1 }, { id: 'y', memoryBytes: 9, throughput: 4 }], {});
    expect(plan.stages).toEqual([
      { peer: 'x', range: [0, 1] },
      { peer: 'y', range: [1, 5] },
    ]);
    expect(plan.bottleneck).toBe(1);
    expect(() => placeLayers({ ...m, headMinLayers: 2 }, [{ id: 'x', memoryBytes: 9, throughput: 1 }], {})).toThrow(/needs a head peer/);
    expect(() => placeLayers(m, [], {})).toThrow(/no peers/);
  });
});
