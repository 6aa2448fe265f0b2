/**
 * The mesh's signaling server: PeerJS's server (`peer`) on the edge server's own HTTP server and
 * port, under `/peerjs`. The mesh token is the PeerJS key, so a client without it is refused when
 * it opens its signaling socket ("Invalid key provided") and never reaches a peer.
 *
 *   GET  /peerjs/…            PeerJS REST (id, peers)         routed by `handle`
 *   WS   /peerjs/peerjs?key=T  signaling socket                 upgrade handled by the PeerJS server
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { ExpressPeerServer } from 'peer';

import { SIGNALING_PATH } from '../../shared/mesh/peer.ts';

export { SIGNALING_PATH };

export interface MeshSignaling {
  readonly path: string;
  /** Serves a request under `path`; false when the request is not for the signaling server. */
  handle(req: IncomingMessage, res: ServerResponse): boolean;
  /** Peers connected to the signaling server now. */
  readonly clients: ReadonlySet<string>;
  /**
   * Closes every signaling socket. An upgraded WebSocket keeps `server.close()` waiting, so a
   * server shutting down calls this first.
   */
  close(): void;
}

/**
 * Mounts the PeerJS server on `server`.
 *
 * @example
 * const signaling = mountMeshSignaling(server, { token });
 * // in the request handler: if (signaling.handle(req, res)) return;
 */
export function mountMeshSignaling(server: Server, o: { token: string }): MeshSignaling {
  if (!o.token) throw new TypeError('the mesh needs a token (--mesh-token)');
  const app = ExpressPeerServer(server, { path: SIGNALING_PATH, key: o.token, allow_discovery: false, proxied: false });
  // The PeerJS server starts when mounted in an express app; this server is plain node:http, so
  // run PeerJS's own mount handler (the last one; express's first one only links prototypes).
  const onMount = app.listeners('mount').at(-1) as ((parent: unknown) => void) | undefined;
  if (!onMount) throw new Error('peer: no mount handler (unsupported version of the "peer" package)');
  onMount.call(app, app);
  const clients = new Set<string>();
  const sockets = new Map<string, { close(): void; terminate?: () => void }>();
  app.on('connection', (c) => {
    clients.add(c.getId());
    const ws = c.getSocket();
    if (ws) sockets.set(c.getId(), ws as unknown as { close(): void; terminate?: () => void });
  });
  app.on('disconnect', (c) => {
    clients.delete(c.getId());
    sockets.delete(c.getId());
  });
  return {
    path: SIGNALING_PATH,
    clients,
    close() {
      for (const ws of sockets.values()) (ws.terminate ?? ws.close).call(ws);
      sockets.clear();
      clients.clear();
    },
    handle(req, res) {
      const url = req.url ?? '';
      if (url !== SIGNALING_PATH && !url.startsWith(`${SIGNALING_PATH}/`)) return false;
      (app as unknown as (req: IncomingMessage, res: ServerResponse) => void)(req, res);
      return true;
    },
  };
}
