/**
 * The Node GPU: Dawn through the `webgpu` package. On machines without a GPU, Dawn needs a
 * Vulkan CPU driver (Mesa ≥ 24 lavapipe); `vlmesh doctor` explains how to install it.
 */
import { createRequire } from 'node:module';
import { NoAdapterError } from '../../shared/errors.ts';
import { createGpuContext, type GpuContext, type GpuContextOptions } from '../../shared/gpu/context.ts';

let gpuSingleton: GPU | null = null;

interface WebGpuModule {
  create: (flags: string[]) => GPU;
  globals: Record<string, unknown>;
}

/** Loads Dawn once and installs the WebGPU globals (GPUBufferUsage, …). */
export function dawnGpu(): GPU {
  if (gpuSingleton) return gpuSingleton;
  let mod: WebGpuModule;
  try {
    mod = createRequire(import.meta.url)('webgpu') as WebGpuModule;
  } catch (e) {
    throw new NoAdapterError('the "webgpu" package (Dawn for Node) could not be loaded: run `npm ci`.', { cause: e });
  }
  Object.assign(globalThis, mod.globals);
  gpuSingleton = mod.create([]);
  return gpuSingleton;
}

/** A GPU context on Dawn's best adapter. Throws NoAdapterError with install advice when none. */
export async function createDawnContext(options: GpuContextOptions = {}): Promise<GpuContext> {
  try {
    return await createGpuContext(dawnGpu(), options);
  } catch (e) {
    if (e instanceof NoAdapterError) {
      throw new NoAdapterError(`${e.message}\n${installAdvice()}`, { cause: e });
    }
    throw e;
  }
}

/** What to install when Dawn finds no adapter. */
export function installAdvice(): string {
  return [
    'Dawn found no Vulkan adapter. On a machine without a GPU, install Mesa 25 lavapipe (Debian 12):',
    "  uri=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources)",
    "  printf 'Types: deb\\nURIs: %s\\nSuites: bookworm-backports\\nComponents: main\\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\\n' \"$uri\" > /etc/apt/sources.list.d/backports.sources",
    '  apt-get update && apt-get install -y libvulkan1 && apt-get install -y -t bookworm-backports mesa-vulkan-drivers',
    "Debian 12's own Mesa 22 lavapipe is too old for Dawn. On a machine with a GPU, install its Vulkan driver.",
  ].join('\n');
}
