/**
 * `vlmesh join`: a Node machine becomes a mesh stage. It connects to the coordinator's signaling
 * server (PeerJS, authenticated by the mesh token), opens a WebRTC data channel to the
 * coordinator, says what it offers (`hello`: memory and a measured per-layer throughput), and
 * then serves whatever layer range the coordinator assigns, loading only those layers' weights
 * from its own copy of the checkpoint (a range that starts at layer 0 — the head of a
 * `--mesh-only` coordinator — also loads the embeddings and the vision tower).
 */
import { VlmeshError } from '../../shared/errors.ts';
import type { GpuContext } from '../../shared/gpu/context.ts';
import { peerJsTransport } from '../../shared/mesh/datachannel.ts';
import { calibrateMiddleLayer, connectToCoordinator, signalingOptions } from '../../shared/mesh/peer.ts';
import type { LayerRange } from '../../shared/mesh/placement.ts';
import { StagePeer } from '../../shared/mesh/stage.ts';
import type { Transport } from '../../shared/mesh/transport.ts';
import { encodeMessage } from '../../shared/mesh/wire.ts';
import { checkpointUploader, openQwen3VLCheckpoint } from '../../shared/model/qwen3-vl/checkpoint.ts';
import { loadWeights } from '../../shared/model/qwen3-vl/load.ts';
import type { GpuWeights } from '../../shared/model/qwen3-vl/weights.gpu.ts';
import { fileDirectory } from '../io/file-source.ts';
import { installNodeWebRtc } from './node-webrtc.ts';

export { COORDINATOR_PEER_ID, calibrateLayerThroughput } from '../../shared/mesh/peer.ts';

/** Joining failed: bad token, no coordinator, or the connection did not open. */
export class MeshJoinError extends VlmeshError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('MESH_JOIN', message, options);
  }
}

export interface JoinOptions {
  /** The coordinator's base URL (`http://host:port`). */
  coordinator: string;
  token: string;
  ctx: GpuContext;
  /** This machine's copy of the model directory. */
  modelDir: string;
  dtype?: 'f32' | 'f16';
  /** Bytes offered (default: the adapter's max buffer size × 4, a rough guess). */
  memoryBytes?: number;
  /** Tokens/s through one layer; measured by a short calibration run when omitted. */
  throughput?: number;
  /** KV cache blocks of 16 tokens (default 1024). */
  numBlocks?: number;
  /** Local address for WebRTC candidates (127.0.0.1 for loopback-only tests). */
  bindAddress?: string;
  /** PeerJS id (default: assigned by the server). */
  peerId?: string;
  /** Milliseconds to wait for the data channel (default 15 s). */
  timeoutMs?: number;
  /**
   * Leave when the coordinator sends nothing (it pings every 200 ms) for this many ms (default
   * 5 s): a coordinator that died without closing the channel.
   */
  coordinatorTimeoutMs?: number;
}

export interface JoinedPeer {
  readonly id: string;
  /** The layer range served now (null until assigned). */
  range(): LayerRange | null;
  /** Resolves with the reason when the connection to the coordinator ends. */
  readonly closed: Promise<string>;
  close(): void;
}

/** `t`, closed with 'coordinator silent' once nothing has arrived for `silentMs`. */
function watched(t: Transport, silentMs: number): Transport {
  let last = Date.now();
  const timer = setInterval(() => {
    if (Date.now() - last > silentMs) t.close(`coordinator silent for ${Date.now() - last} ms`);
  }, Math.min(1000, silentMs));
  t.onClose(() => clearInterval(timer));
  return {
    get closed() {
      return t.closed;
    },
    send: (f) => t.send(f),
    onMessage: (handler) =>
      t.onMessage((f) => {
        last = Date.now();
        handler(f);
      }),
    onClose: (h) => t.onClose(h),
    close: (reason) => t.close(reason),
  };
}

/**
 * Joins the mesh and serves layers until closed.
 *
 * @throws MeshJoinError when the token is refused or the coordinator cannot be reached.
 */
export async function joinMesh(o: JoinOptions): Promise<JoinedPeer> {
  installNodeWebRtc({ bindAddress: o.bindAddress });
  const dir = fileDirectory(o.modelDir);
  const opened = await openQwen3VLCheckpoint(dir);
  const config = opened.config;
  const dtype = o.dtype ?? o.ctx.variants.weights;
  let held: { range: LayerRange; weights: GpuWeights } | null = null;
  const weightsFor = async (range: LayerRange): Promise<GpuWeights> => {
    if (held && held.range[0] === range[0] && held.range[1] === range[1]) return held.weights;
    held?.weights.release();
    held = null;
    const weights = await loadWeights(o.ctx, config, checkpointUploader(opened.checkpoint), { dtype, layers: range });
    held = { range, weights };
    return weights;
  };
  const throughput = o.throughput ?? (await calibrateMiddleLayer(o.ctx, config, weightsFor));
  const mod = (await import('peerjs')) as unknown as { default?: { Peer?: unknown }; Peer?: unknown };
  const PeerCtor = (mod.default?.Peer ?? mod.Peer ?? mod.default) as typeof import('peerjs').Peer;
  const peer = new PeerCtor(o.peerId ?? '', signalingOptions(new URL(o.coordinator), o.token));
  const fail = (message: string, cause?: unknown) => {
    peer.destroy();
    held?.weights.release();
    void opened.checkpoint.close();
    return new MeshJoinError(message, { cause });
  };
  const conn = await connectToCoordinator(peer, { timeoutMs: o.timeoutMs ?? 15_000, where: `joining ${o.coordinator}: `, fail });
  const transport = watched(peerJsTransport(conn as never), o.coordinatorTimeoutMs ?? 5000);
  const stage = new StagePeer(transport, { ctx: o.ctx, config, weightsFor, numBlocks: o.numBlocks ?? 1024 });
  transport.send(
    encodeMessage({
      kind: 'hello',
      memoryBytes: o.memoryBytes ?? o.ctx.device.limits.maxBufferSize * 4,
      throughput,
      peerKind: 'node',
      adapter: o.ctx.adapter.description || o.ctx.adapter.device || o.ctx.adapter.vendor,
    }),
  );
  const closed = new Promise<string>((resolve) => transport.onClose(resolve));
  void closed.then(() => {
    peer.destroy();
    held?.weights.release();
    held = null;
    void opened.checkpoint.close();
  });
  return {
    id: peer.id,
    range: () => stage.range,
    closed,
    close: () => transport.close('peer left'),
  };
}
