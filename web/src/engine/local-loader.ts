/**
 * Loads the in-tab (local) engine lazily: its module — the worker, the model code, the kernels —
 * only downloads when the user picks "Local". The module is found through `import.meta.glob`, so a
 * build without it still works and the picker reports that the local engine is missing.
 */
import type { Engine } from '../../../shared/engine/engine.ts';
import { VlmeshError } from '../../../shared/errors.ts';

/** Download progress of the local engine's weights. */
export interface LoadProgress {
  phase: string;
  loadedBytes: number;
  totalBytes: number;
  bytesPerSecond: number;
  etaSeconds: number;
}

/** The result of the adapter check for a model. */
export type LocalSupport = { ok: true; dtype: 'f16' | 'f32' } | { ok: false; reason: string };

/** What web/src/local/local-engine-client.ts exports. */
export interface LocalEngineModule {
  openLocalEngine(o: { modelUrl: string; onProgress?: (p: LoadProgress) => void; signal?: AbortSignal }): Promise<Engine>;
  checkLocalSupport(modelUrl: string): Promise<LocalSupport>;
}

/** The local engine is not part of this build. */
export class LocalEngineMissingError extends VlmeshError {
  constructor() {
    super('LOCAL_ENGINE_MISSING', 'the in-browser engine is not part of this build; use the server engine');
  }
}

const modules = import.meta.glob<LocalEngineModule>('../local/local-engine-client.ts');

/**
 * Imports the local engine module.
 *
 * @example
 * const { checkLocalSupport } = await loadLocalEngineModule();
 */
export async function loadLocalEngineModule(): Promise<LocalEngineModule> {
  const load = modules['../local/local-engine-client.ts'];
  if (!load) throw new LocalEngineMissingError();
  return load();
}
