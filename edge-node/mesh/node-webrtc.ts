/**
 * WebRTC for Node mesh peers: PeerJS's client expects the browser's `WebSocket`,
 * `RTCPeerConnection`, `RTCSessionDescription` and `RTCIceCandidate` globals; this installs them
 * from `ws` and `node-datachannel`'s W3C polyfill (libdatachannel). With `bindAddress` every peer
 * connection gathers candidates on that address only (127.0.0.1 keeps a test on loopback).
 */
import { createRequire } from 'node:module';
import nodeDataChannel from 'node-datachannel';
import { RTCIceCandidate, RTCPeerConnection, RTCSessionDescription } from 'node-datachannel/polyfill';

/** `ws` (a dependency of `peer`; Node 20 has no global WebSocket), loaded untyped. */
const loadWs = (): unknown => createRequire(import.meta.url)('ws') as unknown;

export interface NodeWebRtcOptions {
  /** Local address for ICE candidates (default: every interface). */
  bindAddress?: string;
}

/** Installs the WebRTC globals PeerJS needs (idempotent; the last call's options win). */
export function installNodeWebRtc(o: NodeWebRtcOptions = {}): void {
  const g = globalThis as Record<string, unknown>;
  const bindAddress = o.bindAddress;
  class BoundPeerConnection extends RTCPeerConnection {
    constructor(config: RTCConfiguration = {}) {
      super({ ...config, ...(bindAddress ? { bindAddress } : {}) } as RTCConfiguration);
    }
  }
  g.WebSocket ??= loadWs();
  g.RTCPeerConnection = BoundPeerConnection;
  g.RTCSessionDescription ??= RTCSessionDescription;
  g.RTCIceCandidate ??= RTCIceCandidate;
}

/** Frees libdatachannel's threads (call once every connection is closed, before exit). */
export function cleanupNodeWebRtc(): void {
  nodeDataChannel.cleanup();
}
