/**
 * Layer placement for the mesh: which peer runs which half-open range of decoder layers.
 *
 * A pure function of the peers' measured memory and throughput, no I/O:
 *
 * - **Throughput** (as Petals): a peer that runs one layer at `t` tokens/s runs `n` layers at
 *   `t / n` tokens/s. The pipeline goes as fast as its weakest stage, so the plan maximises
 *   `min(t_i / n_i)` over the stages.
 * - **Memory** (as exo): a peer never gets more layers than its memory holds
 *   (`n · layerBytes`, plus `headBytes` for the head stage).
 * - **Head**: the head stage (the coordinator or the first peer) owns the embeddings, the vision
 *   tower and the first `headMinLayers` decoder layers (those that receive DeepStack features), so
 *   vision features never cross the network. It is always stage 0 and has at least one layer.
 * - **Replanning** (peers join or leave): among the plans with the best bottleneck, the one that
 *   moves the fewest layers away from their previous owner, then the one with the fewest stages
 *   (fewest hops). Surviving peers keep their previous order; new peers go after them.
 *
 *   peers  A(head, 30 tok/s)  B(20 tok/s)  C(10 tok/s)     6 layers, head needs ≥ 2
 *   best bottleneck 10 tok/s:  A [0,3)  B [3,5)  C [5,6)   (A 10, B 10, C 10)
 *
 * The optimum is found exactly: the best bottleneck is one of the values `t_i / k`
 * (k = 1..numLayers), the largest that admits enough layers; the ranges then come from a dynamic
 * programme over the stage boundaries that minimises moved layers and stages.
 */
import { VlmeshError } from '../errors.ts';

/** Half-open range of decoder layers [start, end). */
export type LayerRange = readonly [number, number];

/** What the placement needs to know of a peer. */
export interface PeerCapacity {
  id: string;
  /** Bytes the peer can give to weights and KV cache. */
  memoryBytes: number;
  /** Measured tokens/s through ONE decoder layer (a calibration run); must be > 0. */
  throughput: number;
}

/** What the placement needs to know of the model. */
export interface PlacementModel {
  numLayers: number;
  /** Bytes one decoder layer costs on a peer (weights + its share of the KV cache). */
  layerBytes: number;
  /** Extra bytes on the head stage: embeddings and vision tower. */
  headBytes: number;
  /** Decoder layers that must stay on the head (DeepStack levels; 0 for text-only). */
  headMinLayers: number;
}

/** One stage of a plan. */
export interface Stage {
  peer: string;
  range: LayerRange;
}

/** Stages in pipeline order; stage 0 is the head. Ranges are contiguous and cover [0, numLayers). */
export interface Plan {
  stages: Stage[];
  /** Tokens/s of the weakest stage. */
  bottleneck: number;
}

export interface PlacementOptions {
  /**
   * The peer that must be the head (the coordinator, or the first peer of a mesh-only
   * coordinator). Omitted when placing layers behind a head that is not part of this placement
   * (then `headBytes` and `headMinLayers` must be 0 and no peer is pinned first).
   */
  head?: string;
  /** The plan in force before this change; the new plan moves as few of its layers as it can. */
  previous?: Plan;
}

/** No assignment fits: not enough memory in the mesh, or the head cannot hold its part. */
export class PlacementError extends VlmeshError {
  constructor(message: string) {
    super('MESH_PLACEMENT', message);
  }
}

/** Tokens/s of a stage of `layers` layers on a peer of per-layer throughput `t`. */
export function stageThroughput(t: number, layers: number): number {
  return layers > 0 ? t / layers : Number.POSITIVE_INFINITY;
}

/** Most layers a peer's memory holds (the head pays for the embeddings and vision tower). */
function memoryCap(p: PeerCapacity, m: PlacementModel, isHead: boolean): number {
  const free = p.memoryBytes - (isHead ? m.headBytes : 0);
  if (free < 0) return -1;
  return m.layerBytes > 0 ? Math.min(m.numLayers, Math.floor(free / m.layerBytes)) : m.numLayers;
}

/** Layers a peer may take at bottleneck `b` (throughput cap and memory cap). */
function capAt(t: number, memCap: number, b: number): number {
  // Tolerance: t / k compared with b computed as t' / k' in floating point.
  return Math.min(memCap, Math.floor((t / b) * (1 + 1e-12)));
}

function validate(m: PlacementModel, peers: readonly PeerCapacity[], head: string | undefined): void {
  if (!Number.isInteger(m.numLayers) || m.numLayers < 1) throw new PlacementError(`numLayers must be a positive integer, got ${m.numLayers}`);
  if (!Number.isInteger(m.headMinLayers) || m.headMinLayers < 0 || m.headMinLayers > m.numLayers) {
    throw new PlacementError(`headMinLayers must be an integer in [0, ${m.numLayers}], got ${m.headMinLayers}`);
  }
  const ids = new Set<string>();
  for (const p of peers) {
    if (ids.has(p.id)) throw new PlacementError(`peer "${p.id}" is listed twice`);
    ids.add(p.id);
    if (!(p.throughput > 0) || !Number.isFinite(p.throughput)) throw new PlacementError(`peer "${p.id}" has throughput ${p.throughput}; it must be a positive number`);
    if (!(p.memoryBytes >= 0)) throw new PlacementError(`peer "${p.id}" has memory ${p.memoryBytes}`);
  }
  if (head === undefined) {
    if (m.headBytes !== 0 || m.headMinLayers !== 0) throw new PlacementError('a model with head bytes or DeepStack layers needs a head peer');
    if (peers.length === 0) throw new PlacementError(`no peers to hold ${m.numLayers} layers`);
  } else if (!ids.has(head)) throw new PlacementError(`the head peer "${head}" is not among the peers`);
}

/**
 * Assigns every decoder layer to a peer.
 *
 * @throws PlacementError when the peers' memory cannot hold the model, or the head cannot hold
 *   the embeddings, the vision tower and its `headMinLayers` layers.
 * @example
 * const plan = placeLayers({ numLayers: 28, layerBytes: 60e6, headBytes: 1.2e9, headMinLayers: 3 },
 *   [{ id: 'coord', memoryBytes: 4e9, throughput: 900 }, { id: 'tab1', memoryBytes: 2e9, throughput: 400 }],
 *   { head: 'coord' });
 */
export function placeLayers(m: PlacementModel, peers: readonly PeerCapacity[], o: PlacementOptions): Plan {
  validate(m, peers, o.head);
  const L = m.numLayers;
  // Pipeline order: the head, then surviving peers in their previous order, then new peers.
  const prevOrder = (o.previous?.stages ?? []).map((s) => s.peer);
  const rank = (id: string) => {
    const i = prevOrder.indexOf(id);
    return i < 0 ? prevOrder.length : i;
  };
  const order = [...peers].sort((a, b) => (a.id === o.head ? -1 : b.id === o.head ? 1 : rank(a.id) - rank(b.id)));
  const hasHead = o.head !== undefined;
  const memCaps = order.map((p, i) => memoryCap(p, m, hasHead && i === 0));
  const headMin = hasHead ? Math.max(m.headMinLayers, 1) : 0;
  if (memCaps[0] < headMin) {
    throw new PlacementError(
      `the head "${o.head ?? ''}" has ${order[0].memoryBytes} bytes: it needs ${m.headBytes} for the embeddings and vision tower ` +
        `plus ${headMin} × ${m.layerBytes} for its layers (the first ${m.headMinLayers} take DeepStack features)`,
    );
  }
  const totalMem = memCaps.reduce((s, c) => s + Math.max(c, 0), 0);
  if (totalMem < L) {
    throw new PlacementError(
      `the mesh holds ${totalMem} of ${L} layers (${peers.length} peer${peers.length === 1 ? '' : 's'}, ${m.layerBytes} bytes a layer): add peers or memory`,
    );
  }

  // The best bottleneck: the largest candidate t_i / k at which the caps add up to L.
  const feasible = (b: number) => {
    const caps = order.map((p, i) => capAt(p.throughput, memCaps[i], b));
    return caps[0] >= headMin && caps.reduce((s, c) => s + Math.max(c, 0), 0) >= L;
  };
  const candidates = [...new Set(order.flatMap((p) => Array.from({ length: L }, (_, k) => p.throughput / (k + 1))))].sort((a, b) => b - a);
  const best = candidates.find(feasible);
  if (best === undefined) throw new PlacementError('no assignment fits'); // unreachable: memory suffices at the smallest candidate
  const caps = order.map((p, i) => Math.max(capAt(p.throughput, memCaps[i], best), 0));

  // Ranges: stage i takes n_i ∈ [lo_i, caps_i] layers, in order; minimise (moved layers, stages).
  const prevOwner: (string | undefined)[] = new Array(L);
  for (const s of o.previous?.stages ?? []) for (let l = s.range[0]; l < s.range[1] && l < L; l++) prevOwner[l] = s.peer;
  const K = order.length;
  // cost[i][b]: best (moved, stages) placing layers [0, b) on the first i peers.
  type Cost = { moved: number; stages: number; from: number };
  const INF: Cost = { moved: Number.POSITIVE_INFINITY, stages: Number.POSITIVE_INFINITY, from: -1 };
  const cost: Cost[][] = Array.from({ length: K + 1 }, () => Array.from({ length: L + 1 }, () => INF));
  cost[0][0] = { moved: 0, stages: 0, from: 0 };
  const better = (a: Cost, b: Cost) => a.moved < b.moved || (a.moved === b.moved && a.stages < b.stages);
  for (let i = 0; i < K; i++) {
    const lo = i === 0 ? headMin : 0;
    for (let b = 0; b <= L; b++) {
      const c = cost[i][b];
      if (!Number.isFinite(c.moved)) continue;
      let moved = 0;
      for (let n = 0; n <= caps[i] && b + n <= L; n++) {
        if (n > 0 && prevOwner[b + n - 1] !== undefined && prevOwner[b + n - 1] !== order[i].id) moved++;
        if (n < lo) continue;
        const next: Cost = { moved: c.moved + moved, stages: c.stages + (n > 0 ? 1 : 0), from: b };
        if (better(next, cost[i + 1][b + n])) cost[i + 1][b + n] = next;
      }
    }
  }
  const stages: Stage[] = [];
  for (let i = K, b = L; i > 0; i--) {
    const from = cost[i][b].from;
    if (from < b) stages.unshift({ peer: order[i - 1].id, range: [from, b] });
    b = from;
  }
  const bottleneck = Math.min(
    ...stages.map((s) => stageThroughput(order.find((p) => p.id === s.peer)!.throughput, s.range[1] - s.range[0])),
  );
  return { stages, bottleneck };
}

/** Layers whose owner differs between two plans (what a replan moves). */
export function movedLayers(before: Plan, after: Plan): number {
  const owner = new Map<number, string>();
  for (const s of before.stages) for (let l = s.range[0]; l < s.range[1]; l++) owner.set(l, s.peer);
  let moved = 0;
  for (const s of after.stages) for (let l = s.range[0]; l < s.range[1]; l++) if (owner.has(l) && owner.get(l) !== s.peer) moved++;
  return moved;
}
