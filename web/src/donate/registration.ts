/**
 * Registering this tab with the coordinator until the mesh lands: `POST /v1/mesh/donors` with
 * what the tab offers, then a heartbeat every `heartbeatIntervalS` (10 s) to
 * `POST /v1/mesh/donors/<id>/heartbeat`; a 404 there (the coordinator restarted or expired us)
 * registers again. `stop()` unregisters (`DELETE`, sent with keepalive so it survives unload).
 */
import { VlmeshError } from '../../../shared/errors.ts';

/** What a donor offers, as registered. */
export interface DonorOffer {
  adapter: { vendor: string; architecture: string; device: string; description: string; isFallbackAdapter: boolean };
  features: string[];
  memory: { estimateBytes: number; maxBufferSize: number; maxStorageBufferBindingSize: number };
  gflops: number;
}

/** The coordinator refused or could not be reached. */
export class RegistrationError extends VlmeshError {
  constructor(message: string) {
    super('DONOR_REGISTRATION', message);
  }
}

export type RegistrationState =
  | { state: 'registering' }
  | { state: 'registered'; id: string; lastHeartbeat: number; heartbeatIntervalS: number }
  | { state: 'failed'; message: string };

async function errorText(res: Response): Promise<string> {
  try {
    const j = (await res.json()) as { error?: { message?: string } };
    if (j.error?.message) return j.error.message;
  } catch {
    // not JSON
  }
  return `${res.status} ${res.statusText}`;
}

/**
 * @example
 * const reg = new DonorRegistration({ offer, onChange: (s) => show(s) });
 * await reg.start();
 */
export class DonorRegistration {
  private id = '';
  private timer: ReturnType<typeof setTimeout> | undefined;
  private stopped = false;

  constructor(
    private readonly o: { offer: DonorOffer; onChange: (s: RegistrationState) => void; apiKey?: string; baseUrl?: string },
  ) {}

  private url(path: string): string {
    return `${this.o.baseUrl ?? ''}${path}`;
  }

  private headers(): Record<string, string> {
    return { 'content-type': 'application/json', ...(this.o.apiKey ? { authorization: `Bearer ${this.o.apiKey}` } : {}) };
  }

  /** Registers and starts the heartbeat. */
  async start(): Promise<void> {
    this.stopped = false;
    this.o.onChange({ state: 'registering' });
    try {
      const res = await fetch(this.url('/v1/mesh/donors'), { method: 'POST', headers: this.headers(), body: JSON.stringify(this.o.offer) });
      if (!res.ok) throw new RegistrationError(`the coordinator refused the registration: ${await errorText(res)}`);
      const j = (await res.json()) as { id: string; heartbeatIntervalS?: number };
      this.id = j.id;
      const every = j.heartbeatIntervalS ?? 10;
      this.o.onChange({ state: 'registered', id: j.id, lastHeartbeat: Date.now(), heartbeatIntervalS: every });
      this.schedule(every);
    } catch (e) {
      const message = e instanceof RegistrationError ? e.message : `cannot reach the coordinator: ${(e as Error).message}`;
      this.o.onChange({ state: 'failed', message });
      if (!this.stopped) this.timer = setTimeout(() => void this.start(), 10_000);
    }
  }

  private schedule(everyS: number): void {
    clearTimeout(this.timer);
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.beat(everyS), everyS * 1000);
  }

  private async beat(everyS: number): Promise<void> {
    if (this.stopped) return;
    try {
      const res = await fetch(this.url(`/v1/mesh/donors/${encodeURIComponent(this.id)}/heartbeat`), { method: 'POST', headers: this.headers(), body: '{}' });
      if (res.status === 404) return void this.start();
      if (!res.ok) throw new RegistrationError(await errorText(res));
      this.o.onChange({ state: 'registered', id: this.id, lastHeartbeat: Date.now(), heartbeatIntervalS: everyS });
    } catch (e) {
      this.o.onChange({ state: 'failed', message: `heartbeat failed: ${(e as Error).message}` });
    }
    this.schedule(everyS);
  }

  /** Stops the heartbeat and unregisters. */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.id) {
      void fetch(this.url(`/v1/mesh/donors/${encodeURIComponent(this.id)}`), { method: 'DELETE', headers: this.headers(), keepalive: true }).catch(() => undefined);
      this.id = '';
    }
  }
}
