/**
 * What every mesh peer shares, whatever runs it (`vlmesh join` in Node, a `/donate` tab): where the
 * signaling server lives, the coordinator's PeerJS id, the calibration run that measures a peer's
 * per-layer throughput for the placement, and a transport wrapper that counts a stage's traffic
 * (bytes each way, tokens it ran) for the peer's own display.
 */
import type { DataConnection, Peer, PeerOptions } from 'peerjs';
import type { GpuContext } from '../gpu/context.ts';
import type { Qwen3VLConfig } from '../model/qwen3-vl/config.ts';
import type { GpuWeights } from '../model/qwen3-vl/weights.gpu.ts';
import { StageRunner } from './stage.ts';
import type { Transport } from './transport.ts';

/** Where PeerJS clients find the coordinator's signaling server (their `path` option). */
export const SIGNALING_PATH = '/peerjs';

/** The PeerJS id the coordinator registers under. */
export const COORDINATOR_PEER_ID = 'vlmesh-coordinator';

/** Measures tokens/s through one decoder layer: a few single-token forwards on `layer`. */
export async function calibrateLayerThroughput(ctx: GpuContext, config: Qwen3VLConfig, weights: GpuWeights, layer: number): Promise<number> {
  const runner = new StageRunner(ctx, config, weights, [layer, layer + 1], { numBlocks: 4, blockSize: 16 });
  const Hd = config.text.hiddenSize;
  const hidden = Float32Array.from({ length: Hd }, (_, i) => Math.sin(i));
  const step = (i: number) => {
    const p = Int32Array.of(i);
    return runner.forward({ kind: 'forward', seq: 0, chunk: i, start: i, positions: [p, p, p], hidden, rows: 1, cols: Hd, dtype: 'f32' });
  };
  try {
    await step(0); // compiles the pipelines
    const n = 8;
    const t0 = performance.now();
    for (let i = 1; i <= n; i++) await step(i);
    const s = (performance.now() - t0) / 1000;
    return n / Math.max(s, 1e-6);
  } finally {
    runner.dispose();
  }
}

/** Calibrates on the middle decoder layer (loaded through `weightsFor`, as a stage would). */
export async function calibrateMiddleLayer(
  ctx: GpuContext,
  config: Qwen3VLConfig,
  weightsFor: (range: readonly [number, number]) => Promise<GpuWeights>,
): Promise<number> {
  const L = config.text.numLayers;
  const layer = Math.min(L - 1, Math.floor(L / 2));
  return calibrateLayerThroughput(ctx, config, await weightsFor([layer, layer + 1]), layer);
}

/** PeerJS client options for the signaling server of the coordinator at `origin` (loopback ICE only). */
export function signalingOptions(origin: { protocol: string; hostname: string; port: string }, token: string): PeerOptions {
  return {
    host: origin.hostname,
    port: Number(origin.port || (origin.protocol === 'https:' ? 443 : 80)),
    secure: origin.protocol === 'https:',
    path: SIGNALING_PATH,
    key: token,
    config: { iceServers: [] },
    debug: 0,
  };
}

/** PeerJS error types that end the peer itself (anything else concerns one connection). */
const FATAL_PEER_ERRORS = new Set([
  'browser-incompatible',
  'disconnected',
  'invalid-id',
  'invalid-key',
  'network',
  'peer-unavailable',
  'server-error',
  'socket-closed',
  'socket-error',
  'ssl-unavailable',
  'unavailable-id',
]);

/**
 * Opens `peer`'s data connection to the coordinator. A signaling error (a refused token among them)
 * or no open channel within `timeoutMs` rejects with `fail(message, cause)`, which also cleans up;
 * `where` prefixes the messages (e.g. "joining http://…: ").
 *
 * A connection that fails before it opens (ICE or DTLS negotiation failed, closed early; seen now
 * and then with libdatachannel on loopback: a DTLS handshake refused with "unknown CA"), or that
 * is not open after `timeoutMs / attempts` (at least 2 s), is closed and tried again with a new
 * one, up to `attempts` times (default 4) within the same `timeoutMs`.
 * Errors after the channel opened are the transport's business, not this function's.
 */
export function connectToCoordinator(
  peer: Peer,
  o: { timeoutMs: number; where: string; fail: (message: string, cause?: unknown) => Error; attempts?: number },
): Promise<DataConnection> {
  const maxAttempts = Math.max(1, o.attempts ?? 4);
  const perAttemptMs = Math.max(2000, Math.floor(o.timeoutMs / maxAttempts));
  return new Promise<DataConnection>((resolve, reject) => {
    let settled = false;
    let attempt = 0;
    let retryCurrent: ((why: string, cause?: unknown) => void) | null = null;
    const settle = (f: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      f();
    };
    const timer = setTimeout(
      () => settle(() => reject(o.fail(`${o.where}no data channel to the coordinator within ${o.timeoutMs} ms (${attempt} attempt${attempt === 1 ? '' : 's'})`))),
      o.timeoutMs,
    );
    const open = () => {
      attempt++;
      const c = peer.connect(COORDINATOR_PEER_ID, { serialization: 'raw', reliable: true });
      let over = false;
      const retry = (why: string, cause?: unknown) => {
        if (over || settled) return;
        over = true;
        clearTimeout(slow);
        c.close();
        if (attempt >= maxAttempts) {
          settle(() => reject(o.fail(`${o.where}the WebRTC connection to the coordinator failed ${attempt} times (last: ${why})`, cause)));
          return;
        }
        setTimeout(() => {
          if (!settled) open();
        }, 50 * attempt);
      };
      retryCurrent = retry;
      const slow = setTimeout(() => retry(`not open after ${perAttemptMs} ms`), perAttemptMs);
      c.on('open', () => {
        clearTimeout(slow);
        if (over) return;
        over = true;
        settle(() => resolve(c));
      });
      // PeerJS does not always report a connection whose DTLS handshake failed: watch its state.
      const pc = c.peerConnection as RTCPeerConnection | undefined;
      pc?.addEventListener?.('connectionstatechange', () => {
        if (pc.connectionState === 'failed' || pc.connectionState === 'closed') retry(`connection ${pc.connectionState}`);
      });
      c.on('error', (e) => retry(e.message || e.type, e));
      c.on('close', () => retry('closed before it opened'));
    };
    peer.on('error', (e) => {
      if (settled) return;
      if (!FATAL_PEER_ERRORS.has(e.type)) {
        retryCurrent?.(`${e.type}${e.message ? `: ${e.message}` : ''}`, e);
        return;
      }
      settle(() => reject(o.fail(`${o.where}${e.type === 'server-error' || e.type === 'invalid-key' || /key/i.test(e.message) ? 'the mesh token was refused' : e.message || e.type}`, e)));
    });
    peer.on('open', open);
  });
}

/** A stage's traffic so far. */
export interface StageTraffic {
  bytesSent: number;
  bytesReceived: number;
  /** Rows of hidden states this stage returned (prompt tokens and decoded tokens; replays included). */
  tokensServed: number;
  /** Result frames returned (one per chunk run). */
  results: number;
}

/** Frame header offsets (see wire.ts). */
const KIND_OFFSET = 5;
const ROWS_OFFSET = 20;
/** Index of 'result' in the wire's kinds. */
const RESULT_KIND = 1;

/**
 * `t`, counting what goes through it into `traffic` (read it any time).
 *
 * @example
 * const traffic = { bytesSent: 0, bytesReceived: 0, tokensServed: 0, results: 0 };
 * new StagePeer(countingTransport(transport, traffic), options);
 */
export function countingTransport(t: Transport, traffic: StageTraffic): Transport {
  return {
    get closed() {
      return t.closed;
    },
    send(frame) {
      traffic.bytesSent += frame.length;
      if (frame.length > ROWS_OFFSET + 4 && frame[KIND_OFFSET] === RESULT_KIND) {
        traffic.results++;
        traffic.tokensServed += new DataView(frame.buffer, frame.byteOffset, frame.byteLength).getUint32(ROWS_OFFSET, true);
      }
      t.send(frame);
    },
    onMessage: (handler) =>
      t.onMessage((f) => {
        traffic.bytesReceived += f.length;
        handler(f);
      }),
    onClose: (h) => t.onClose(h),
    close: (reason) => t.close(reason),
  };
}
