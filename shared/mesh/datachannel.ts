/**
 * A mesh `Transport` over a WebRTC data channel (the browser's `RTCDataChannel`, the
 * `node-datachannel` polyfill's in Node, or a PeerJS `DataConnection` in raw mode). Data channels cap a message (SCTP, 256 KiB in
 * libdatachannel and Chromium), and a prefill chunk of a large model is bigger, so each frame is
 * sent as pieces of at most `maxPiece` bytes, each with a one-byte prefix:
 *
 *   [0x00 | bytes…]  more pieces follow      [0x01 | bytes…]  last piece of the frame
 *
 * The channel must be ordered and reliable (the default), so pieces arrive in order and the
 * receiver concatenates them.
 */
import type { Transport } from './transport.ts';

/** The part of `RTCDataChannel` this module uses. */
export interface DataChannelLike {
  binaryType: string;
  readonly readyState: string;
  send(data: Uint8Array): void;
  close(): void;
  addEventListener(type: 'message', listener: (ev: { data: unknown }) => void): void;
  addEventListener(type: 'close' | 'error', listener: (ev: unknown) => void): void;
}

export interface DataChannelTransportOptions {
  /** Largest piece sent (default 64 KiB, well under every implementation's message limit). */
  maxPiece?: number;
}

function bytesOf(data: unknown): Uint8Array | null {
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return null;
}

/** The part of a PeerJS `DataConnection` (opened with `serialization: 'raw'`) this module uses. */
export interface PeerJsConnectionLike {
  readonly open: boolean;
  send(data: ArrayBuffer | Uint8Array): void;
  close(): void;
  on(event: 'data', listener: (data: unknown) => void): unknown;
  on(event: 'close' | 'error', listener: (e?: unknown) => void): unknown;
}

interface PieceLink {
  sendPiece(piece: Uint8Array): void;
  isOpen(): boolean;
  close(): void;
  subscribe(onPiece: (data: unknown) => void, onEnd: (reason: string) => void): void;
}

/** Frames as prefixed pieces over a message link (see the file comment). */
function piecedTransport(link: PieceLink, o: DataChannelTransportOptions): Transport {
  const maxPiece = Math.max(1024, o.maxPiece ?? 64 * 1024);
  let onMessage: ((frame: Uint8Array) => void) | null = null;
  const onClose: ((reason: string) => void)[] = [];
  let closed = false;
  let parts: Uint8Array[] = [];
  const finish = (reason: string) => {
    if (closed) return;
    closed = true;
    for (const h of onClose) h(reason);
  };
  link.subscribe(
    (data) => {
      const piece = bytesOf(data);
      if (!piece || piece.length === 0 || closed) return;
      parts.push(piece.slice(1));
      if (piece[0] !== 1) return;
      const total = parts.reduce((s, p) => s + p.length, 0);
      const frame = new Uint8Array(total);
      let at = 0;
      for (const p of parts) {
        frame.set(p, at);
        at += p.length;
      }
      parts = [];
      onMessage?.(frame);
    },
    finish,
  );
  return {
    get closed() {
      return closed;
    },
    send(frame) {
      if (closed || !link.isOpen()) return;
      const step = maxPiece - 1;
      for (let off = 0; ; off += step) {
        const end = Math.min(frame.length, off + step);
        const piece = new Uint8Array(1 + end - off);
        piece[0] = end === frame.length ? 1 : 0;
        piece.set(frame.subarray(off, end), 1);
        link.sendPiece(piece);
        if (end === frame.length) break;
      }
    },
    onMessage(handler) {
      onMessage = handler;
    },
    onClose(handler) {
      onClose.push(handler);
    },
    close(reason = 'closed') {
      if (closed) return;
      try {
        link.close();
      } finally {
        finish(reason);
      }
    },
  };
}

/**
 * Wraps an open data channel as a `Transport`.
 *
 * @example
 * const dc = pc.createDataChannel('mesh');
 * dc.onopen = () => coordinator.addPeer('tab-1', dataChannelTransport(dc), capacity);
 */
export function dataChannelTransport(channel: DataChannelLike, o: DataChannelTransportOptions = {}): Transport {
  channel.binaryType = 'arraybuffer';
  return piecedTransport(
    {
      sendPiece: (p) => channel.send(p),
      isOpen: () => channel.readyState === 'open',
      close: () => channel.close(),
      subscribe(onPiece, onEnd) {
        channel.addEventListener('message', (ev) => onPiece(ev.data));
        channel.addEventListener('close', () => onEnd('data channel closed'));
        channel.addEventListener('error', () => onEnd('data channel error'));
      },
    },
    o,
  );
}

/**
 * Wraps an open PeerJS data connection (`serialization: 'raw'`) as a `Transport`.
 *
 * @example
 * const conn = peer.connect('coordinator', { serialization: 'raw', reliable: true });
 * conn.on('open', () => new StagePeer(peerJsTransport(conn), options));
 */
export function peerJsTransport(conn: PeerJsConnectionLike, o: DataChannelTransportOptions = {}): Transport {
  return piecedTransport(
    {
      // PeerJS 'raw' hands the value to the data channel as is; send a tight ArrayBuffer.
      sendPiece: (p) => conn.send(p.buffer as ArrayBuffer), // pieces are fresh, tight arrays
      isOpen: () => conn.open,
      close: () => conn.close(),
      subscribe(onPiece, onEnd) {
        conn.on('data', onPiece);
        conn.on('close', () => onEnd('connection closed'));
        conn.on('error', () => onEnd('connection error'));
      },
    },
    o,
  );
}
