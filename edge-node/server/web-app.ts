/**
 * Serving the built web app (`npm run build:web` → dist/web) and the pages around it:
 *
 *   /  /donate  /kiosk        index.html (routes of one single-page app), `no-cache`
 *   /assets/<hashed name>     the build's JS/CSS, `immutable` for a year (names change with content)
 *   /doctor                   the adapter report page (public/doctor.html)
 *   /api/web-config           {kiosk, kioskIdleSeconds, model, modelUrl} for the page
 *   /kiosk/config             {idleSeconds} for the kiosk page
 *   other files               from dist/web, then public/
 *
 * With `--kiosk`, `/` is the kiosk page (the app reads `kiosk: true` from /api/web-config). When
 * the app is not built, `/` falls back to the doctor page and /donate, /kiosk explain how to build.
 */
import { stat } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join, normalize, sep } from 'node:path';
import { sendFile } from './static-files.ts';

export interface WebAppOptions {
  /** The Vite build output (dist/web). */
  webDir: string;
  /** Static pages (public/: doctor.html). */
  publicDir: string;
  /** `--kiosk`: `/` serves the kiosk page. */
  kiosk: boolean;
  /** `--kiosk-idle-s`: the kiosk's idle reset. */
  kioskIdleSeconds: number;
  /** The served model's name and the URL path of its files, when it publishes them. */
  model: { name: string; filesPath: string } | null;
}

const APP_ROUTES = new Set(['/', '/donate', '/kiosk']);
const IMMUTABLE = 'public, max-age=31536000, immutable';

function sendJson(res: ServerResponse, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)), 'cache-control': 'no-store' });
  res.end(text);
}

/** `base/rel` when it stays inside `base`, else null. */
function inside(base: string, rel: string): string | null {
  const root = base.endsWith(sep) ? base : base + sep;
  const full = normalize(join(root, rel));
  return full.startsWith(root) ? full : null;
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    (s) => s.isFile(),
    () => false,
  );
}

const NOT_BUILT = `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>vlmesh — web app not built</title></head>
<body style="font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem">
<h1>The web app is not built</h1><p>Build it once with <code>npm run build:web</code> (or start the node with <code>npm start</code>), then reload. The <a href="/doctor">adapter report</a> works without it.</p></body></html>`;

/**
 * A handler for GET/HEAD requests outside `/v1/`: resolves true when it answered.
 *
 * @example
 * const app = webAppHandler({ webDir, publicDir, kiosk: false, kioskIdleSeconds: 120, model: null });
 * if (!(await app(req, res, path))) notFound();
 */
export function webAppHandler(o: WebAppOptions) {
  const index = join(o.webDir, 'index.html');
  return async (req: IncomingMessage, res: ServerResponse, rawPath: string): Promise<boolean> => {
    const path = rawPath.length > 1 ? rawPath.replace(/\/+$/, '') : rawPath;
    if (path === '/api/web-config') {
      sendJson(res, { kiosk: o.kiosk, kioskIdleSeconds: o.kioskIdleSeconds, model: o.model?.name ?? null, modelUrl: o.model?.filesPath ?? null });
      return true;
    }
    if (path === '/kiosk/config') {
      sendJson(res, { idleSeconds: o.kioskIdleSeconds });
      return true;
    }
    if (path === '/doctor') return sendFile(req, res, join(o.publicDir, 'doctor.html'), { cacheControl: 'no-cache', ranges: false });
    if (APP_ROUTES.has(path)) {
      if (await exists(index)) return sendFile(req, res, index, { cacheControl: 'no-cache', ranges: false });
      if (path === '/') return sendFile(req, res, join(o.publicDir, 'doctor.html'), { cacheControl: 'no-cache', ranges: false });
      const body = Buffer.from(NOT_BUILT);
      res.writeHead(503, { 'content-type': 'text/html; charset=utf-8', 'content-length': String(body.length), 'cache-control': 'no-store' });
      res.end(req.method === 'HEAD' ? undefined : body);
      return true;
    }
    let rel: string;
    try {
      rel = decodeURIComponent(rawPath.slice(1));
    } catch {
      return false;
    }
    if (rel.includes('\0')) return false;
    const built = inside(o.webDir, rel);
    if (built && (await sendFile(req, res, built, { cacheControl: rel.startsWith('assets/') ? IMMUTABLE : 'no-cache' }))) return true;
    const pub = inside(o.publicDir, rel);
    return pub !== null && sendFile(req, res, pub, { cacheControl: 'no-cache' });
  };
}
