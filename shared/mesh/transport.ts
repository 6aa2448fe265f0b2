/**
 * How mesh frames move between the coordinator and a stage. A `Transport` is one end of an
 * ordered, reliable, message-oriented link (a WebRTC data channel, a WebSocket, or, for tests and
 * for stages in the same process, `inProcessLink`).
 *
 * `inProcessLink` delivers asynchronously (as a network would) and can inject the faults the mesh
 * must survive: a peer that goes silent without closing, and a peer whose frames are tampered with.
 */

/** One end of a link carrying framed binary messages. */
export interface Transport {
  /** Queues a frame for the other end; dropped silently once closed. */
  send(frame: Uint8Array): void;
  /** Receives every frame from the other end (one handler). */
  onMessage(handler: (frame: Uint8Array) => void): void;
  /** Adds a handler called once when either end closes the link. */
  onClose(handler: (reason: string) => void): void;
  close(reason?: string): void;
  readonly closed: boolean;
}

/** Fault injection on one end of an in-process link. */
export interface LinkFaults {
  /** Stop delivering frames in both directions without closing (a frozen tab, a cut cable). */
  silence(): void;
  /** Rewrite every frame this end sends from now on (return the frame to send). */
  tamper(fn: (frame: Uint8Array) => Uint8Array): void;
}

class InProcessEnd implements Transport, LinkFaults {
  other!: InProcessEnd;
  private handler: ((frame: Uint8Array) => void) | null = null;
  private readonly closeHandlers: ((reason: string) => void)[] = [];
  private isClosed = false;
  private silent = false;
  private tamperFn: ((frame: Uint8Array) => Uint8Array) | null = null;

  get closed(): boolean {
    return this.isClosed;
  }

  send(frame: Uint8Array): void {
    if (this.isClosed || this.silent || this.other.silent) return;
    const out = this.tamperFn ? this.tamperFn(frame.slice()) : frame.slice();
    const to = this.other;
    // Asynchronous like a network, in order.
    queueMicrotask(() => {
      if (!to.isClosed && !to.silent && !this.silent) to.handler?.(out);
    });
  }

  onMessage(handler: (frame: Uint8Array) => void): void {
    this.handler = handler;
  }

  onClose(handler: (reason: string) => void): void {
    this.closeHandlers.push(handler);
  }

  close(reason = 'closed'): void {
    if (this.isClosed) return;
    this.isClosed = true;
    for (const h of this.closeHandlers) h(reason);
    this.other.close(reason);
  }

  silence(): void {
    this.silent = true;
  }

  tamper(fn: (frame: Uint8Array) => Uint8Array): void {
    this.tamperFn = fn;
  }
}

/**
 * Two connected transports in this process: frames sent on one arrive on the other.
 *
 * @example
 * const [coordSide, peerSide] = inProcessLink();
 * peerSide.onMessage((f) => peerSide.send(f)); // echo
 */
export function inProcessLink(): [Transport & LinkFaults, Transport & LinkFaults] {
  const a = new InProcessEnd();
  const b = new InProcessEnd();
  a.other = b;
  b.other = a;
  return [a, b];
}
