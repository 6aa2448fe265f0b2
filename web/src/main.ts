/**
 * The web app's entry: one page, three routes, each page's code loaded on demand.
 *
 *   /donate          <vlmesh-donate-page>  (kernels + GPU code only here)
 *   /kiosk           <vlmesh-kiosk-page>
 *   /                <vlmesh-kiosk-page> when the node runs `serve --kiosk`, else <vlmesh-chat-page>
 */
import { fetchWebConfig } from './web-config.ts';

async function mount(): Promise<void> {
  const root = document.getElementById('app')!;
  const path = location.pathname.replace(/\/+$/, '') || '/';
  let tag: 'vlmesh-donate-page' | 'vlmesh-kiosk-page' | 'vlmesh-chat-page';
  if (path === '/donate') {
    await import('./pages/donate-page.ts');
    tag = 'vlmesh-donate-page';
    document.title = 'vlmesh — donate this GPU';
  } else if (path === '/kiosk' || (path === '/' && (await fetchWebConfig()).kiosk)) {
    await import('./pages/kiosk-page.ts');
    tag = 'vlmesh-kiosk-page';
    document.title = 'vlmesh — ask';
    document.documentElement.classList.add('kiosk');
  } else {
    await import('./pages/chat-page.ts');
    tag = 'vlmesh-chat-page';
  }
  root.replaceChildren(document.createElement(tag));
}

mount().catch((e: unknown) => {
  const p = document.createElement('p');
  p.setAttribute('role', 'alert');
  p.textContent = `The app failed to start: ${(e as Error).message}`;
  document.getElementById('app')?.replaceChildren(p);
});
