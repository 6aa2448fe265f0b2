/**
 * What the edge node tells the page about itself (`GET /api/web-config`): whether it runs as a
 * kiosk, the kiosk's idle reset, and the model it publishes for in-tab engines.
 */

export interface WebConfig {
  /** `vlmesh serve --kiosk`: `/` is the kiosk page. */
  kiosk: boolean;
  /** Seconds without interaction before the kiosk clears its conversation. */
  kioskIdleSeconds: number;
  /** The served model's name, or null without a local model. */
  model: string | null;
  /** Base URL of the model's files for the local engine (`/models/<name>/`), or null. */
  modelUrl: string | null;
}

export const DEFAULT_WEB_CONFIG: WebConfig = { kiosk: false, kioskIdleSeconds: 120, model: null, modelUrl: null };

/**
 * Fetches the page configuration; a node without the route (or unreachable) gives the defaults.
 *
 * @example
 * const { kiosk } = await fetchWebConfig();
 */
export async function fetchWebConfig(): Promise<WebConfig> {
  try {
    const res = await fetch('/api/web-config', { cache: 'no-store' });
    if (!res.ok) return { ...DEFAULT_WEB_CONFIG };
    const j = (await res.json()) as Partial<WebConfig>;
    return {
      kiosk: j.kiosk === true,
      kioskIdleSeconds: typeof j.kioskIdleSeconds === 'number' && j.kioskIdleSeconds > 0 ? j.kioskIdleSeconds : DEFAULT_WEB_CONFIG.kioskIdleSeconds,
      model: typeof j.model === 'string' ? j.model : null,
      modelUrl: typeof j.modelUrl === 'string' ? j.modelUrl : null,
    };
  } catch {
    return { ...DEFAULT_WEB_CONFIG };
  }
}
