/**
 * The coordinator's side of the mesh on an edge server: a PeerJS client (id
 * `vlmesh-coordinator`) on the server's own signaling endpoint accepts data connections from
 * peers (`vlmesh join`, `/donate` tabs), reads each one's `hello` (memory, throughput, adapter),
 * and adds it to the `MeshCoordinator`, which places layers on it and drives requests through it.
 */
import type { MeshCoordinator } from '../../shared/mesh/coordinator.ts';
import { peerJsTransport } from '../../shared/mesh/datachannel.ts';
import { decodeMessage } from '../../shared/mesh/wire.ts';
import { COORDINATOR_PEER_ID, MeshJoinError } from './join.ts';
import { installNodeWebRtc } from './node-webrtc.ts';
import { SIGNALING_PATH } from './signaling.ts';

export interface MeshHostOptions {
  coordinator: MeshCoordinator;
  /** This server's base URL as seen from itself (`http://127.0.0.1:PORT`). */
  url: string;
  token: string;
  /** Local address for WebRTC candidates. */
  bindAddress?: string;
  /** A connection that sends no valid `hello` within this many ms is dropped (default 10 s). */
  helloTimeoutMs?: number;
  /** Mesh log lines. */
  log?: (line: string) => void;
}

export interface MeshHost {
  close(): void;
}

/** Starts accepting peers; resolves once registered with the signaling server. */
export async function hostMesh(o: MeshHostOptions): Promise<MeshHost> {
  installNodeWebRtc({ bindAddress: o.bindAddress });
  const url = new URL(o.url);
  const mod = (await import('peerjs')) as unknown as { default?: { Peer?: unknown }; Peer?: unknown };
  const PeerCtor = (mod.default?.Peer ?? mod.Peer ?? mod.default) as typeof import('peerjs').Peer;
  const peer = new PeerCtor(COORDINATOR_PEER_ID, {
    host: url.hostname,
    port: Number(url.port || (url.protocol === 'https:' ? 443 : 80)),
    secure: url.protocol === 'https:',
    path: SIGNALING_PATH,
    key: o.token,
    config: { iceServers: [] },
    debug: 0,
  });
  await new Promise<void>((resolve, reject) => {
    peer.on('open', () => resolve());
    peer.on('error', (e) => reject(new MeshJoinError(`the coordinator could not register with its signaling server: ${e.message}`, { cause: e })));
  });
  peer.on('connection', (conn) => {
    conn.on('open', () => {
      const transport = peerJsTransport(conn as never);
      const timer = setTimeout(() => transport.close('no hello'), o.helloTimeoutMs ?? 10_000);
      transport.onMessage((frame) => {
        clearTimeout(timer);
        let hello: ReturnType<typeof decodeMessage>;
        try {
          hello = decodeMessage(frame);
        } catch (e) {
          o.log?.(`mesh: ${conn.peer} sent a bad hello: ${(e as Error).message}`);
          transport.close('bad hello');
          return;
        }
        if (hello.kind !== 'hello') {
          transport.close('expected hello');
          return;
        }
        o.log?.(`mesh: ${conn.peer} joined (${hello.peerKind}, ${hello.adapter}, ${hello.throughput.toFixed(1)} tok/s/layer)`);
        o.coordinator
          .addPeer(conn.peer, transport, { memoryBytes: hello.memoryBytes, throughput: hello.throughput }, { kind: hello.peerKind, adapter: hello.adapter })
          .catch((e: Error) => o.log?.(`mesh: placing layers after ${conn.peer} joined failed: ${e.message}`));
      });
    });
  });
  return { close: () => peer.destroy() };
}
