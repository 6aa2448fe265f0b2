/**
 * This tab as a mesh stage: it joins the edge node's coordinator over WebRTC (PeerJS signaling
 * at `/peerjs` on the page's own origin, the mesh token as the PeerJS key), says what it offers
 * (`hello`: memory, per-layer throughput, adapter), and serves the decoder layers the coordinator
 * assigns, loading only those layers' weights from the node's `/models/<name>/` with Range
 * requests (and, when it is the head of a `--mesh-only` coordinator — its range starts at layer
 * 0 — the embeddings and the vision tower too).
 *
 *   PeerJS ─► data connection to "vlmesh-coordinator" ─► hello ─► assign [a,b) ─► Range GETs of
 *   layers a..b-1 ─► forwards in, f16 hidden states out (StagePeer, the same code `vlmesh join` runs)
 */

import { VlmeshError } from '../../../shared/errors.ts';
import type { GpuContext } from '../../../shared/gpu/context.ts';
import { peerJsTransport } from '../../../shared/mesh/datachannel.ts';
import { calibrateMiddleLayer, connectToCoordinator, countingTransport, signalingOptions, type StageTraffic } from '../../../shared/mesh/peer.ts';
import type { LayerRange } from '../../../shared/mesh/placement.ts';
import { StagePeer } from '../../../shared/mesh/stage.ts';
import { encodeMessage } from '../../../shared/mesh/wire.ts';
import { checkpointUploader, openQwen3VLCheckpoint } from '../../../shared/model/qwen3-vl/checkpoint.ts';
import { loadWeights } from '../../../shared/model/qwen3-vl/load.ts';
import type { GpuWeights } from '../../../shared/model/qwen3-vl/weights.gpu.ts';
import { httpDirectory } from './http-directory.ts';

/** Joining failed: the token was refused, or no data channel opened. */
export class TabStageError extends VlmeshError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('MESH_TAB_JOIN', message, options);
  }
}

export interface TabStageOptions {
  ctx: GpuContext;
  /** The mesh token (`vlmesh serve --mesh-token`). */
  token: string;
  /** The model's files on the node (`/models/<name>/`). */
  modelUrl: string;
  /** Bytes offered for weights and KV cache. */
  memoryBytes: number;
  /** Tokens/s through one decoder layer; measured when omitted. */
  throughput?: number;
  /** KV cache blocks of 16 tokens (default 256). */
  numBlocks?: number;
  /** Milliseconds to wait for the data channel (default 20 s). */
  timeoutMs?: number;
  /** Called when the range, the traffic or the state changes. */
  onChange?: () => void;
}

/** A tab serving layers for the coordinator. */
export interface TabStage {
  readonly id: string;
  /** The layer range served now, null until assigned. */
  range(): LayerRange | null;
  /** Bytes and tokens so far. */
  readonly traffic: Readonly<StageTraffic>;
  /** Weight bytes downloaded for the ranges assigned so far. */
  weightBytes(): number;
  readonly throughput: number;
  /** The addresses of the WebRTC candidate pair in use (`ip:port`), null before one is selected. */
  route(): Promise<{ local: string; remote: string } | null>;
  /** Resolves with the reason once the link to the coordinator ends. */
  readonly closed: Promise<string>;
  close(): void;
}

/**
 * Joins the mesh of the page's node.
 *
 * @throws TabStageError when the token is refused or the coordinator cannot be reached.
 * @example
 * const stage = await joinMeshFromTab({ ctx, token, modelUrl: '/models/tiny/', memoryBytes: 1 << 30 });
 */
export async function joinMeshFromTab(o: TabStageOptions): Promise<TabStage> {
  let downloaded = 0;
  const dir = httpDirectory(o.modelUrl, { onBytes: (n) => (downloaded += n) });
  const opened = await openQwen3VLCheckpoint(dir);
  const config = opened.config;
  const dtype = o.ctx.variants.weights;
  let held: { range: LayerRange; weights: GpuWeights } | null = null;
  const weightsFor = async (range: LayerRange): Promise<GpuWeights> => {
    if (held && held.range[0] === range[0] && held.range[1] === range[1]) return held.weights;
    held?.weights.release();
    held = null;
    const weights = await loadWeights(o.ctx, config, checkpointUploader(opened.checkpoint), { dtype, layers: range });
    held = { range, weights };
    o.onChange?.();
    return weights;
  };
  const throughput = o.throughput ?? (await calibrateMiddleLayer(o.ctx, config, weightsFor));
  const { Peer } = await import('peerjs');
  const peer = new Peer(`tab-${crypto.randomUUID().slice(0, 8)}`, signalingOptions(location, o.token));
  const fail = (message: string, cause?: unknown) => {
    peer.destroy();
    held?.weights.release();
    void opened.checkpoint.close();
    return new TabStageError(message, { cause });
  };
  const conn = await connectToCoordinator(peer, { timeoutMs: o.timeoutMs ?? 20_000, where: '', fail });
  const traffic: StageTraffic = { bytesSent: 0, bytesReceived: 0, tokensServed: 0, results: 0 };
  const raw = peerJsTransport(conn);
  const transport = countingTransport(raw, traffic);
  let lastNotified = 0;
  const stage = new StagePeer(
    {
      ...transport,
      get closed() {
        return transport.closed;
      },
      send(frame) {
        transport.send(frame);
        // Throttled: the page re-renders at most every 250 ms.
        const now = performance.now();
        if (now - lastNotified > 250) {
          lastNotified = now;
          o.onChange?.();
        }
      },
    },
    { ctx: o.ctx, config, weightsFor, numBlocks: o.numBlocks ?? 256 },
  );
  transport.send(
    encodeMessage({
      kind: 'hello',
      memoryBytes: o.memoryBytes,
      throughput,
      peerKind: 'browser',
      adapter: o.ctx.adapter.description || o.ctx.adapter.device || o.ctx.adapter.vendor || 'WebGPU',
    }),
  );
  const closed = new Promise<string>((resolve) => transport.onClose(resolve));
  void closed.then(() => {
    peer.destroy();
    held?.weights.release();
    held = null;
    void opened.checkpoint.close();
    o.onChange?.();
  });
  return {
    id: peer.id,
    range: () => stage.range,
    traffic,
    weightBytes: () => downloaded,
    throughput,
    route: () => selectedPair(conn.peerConnection),
    closed,
    close: () => transport.close('peer left'),
  };
}

/** The candidate pair an RTCPeerConnection selected, from its stats. */
async function selectedPair(pc: RTCPeerConnection | undefined): Promise<{ local: string; remote: string } | null> {
  if (!pc) return null;
  const stats = await pc.getStats();
  const byId = new Map<string, Record<string, unknown>>();
  stats.forEach((r: Record<string, unknown>) => {
    byId.set(String(r.id), r);
  });
  let pairId: string | undefined;
  for (const r of byId.values()) if (r.type === 'transport' && typeof r.selectedCandidatePairId === 'string') pairId = r.selectedCandidatePairId;
  const pair = pairId ? byId.get(pairId) : [...byId.values()].find((r) => r.type === 'candidate-pair' && r.nominated === true && r.state === 'succeeded');
  if (!pair) return null;
  const addr = (id: unknown) => {
    const c = byId.get(String(id));
    return c ? `${String(c.address ?? c.ip ?? '?')}:${String(c.port ?? '?')}` : '?';
  };
  return { local: addr(pair.localCandidateId), remote: addr(pair.remoteCandidateId) };
}
