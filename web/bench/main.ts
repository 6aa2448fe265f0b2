/**
 * The page `vlmesh bench` opens in Chromium to compare our linear kernels with onnxruntime-web's
 * WebGPU MatMul on the page's adapter (see shared/bench/peer.ts). The bench server serves
 * onnxruntime-web's dist/ files, unbundled, under `/ort/` (ORT loads its .wasm and worker .mjs
 * from `ort.env.wasm.wasmPaths`).
 */
import type * as Ort from 'onnxruntime-web';
import { createGpuContext } from '../../shared/gpu/context.ts';
import { type PeerOptions, type PeerResult, runPeerComparison } from '../../shared/bench/peer.ts';

/** Where the bench server serves onnxruntime-web's dist/ directory. */
const ORT_BASE = '/ort/';

declare global {
  interface Window {
    vlmeshBench: { run(options: PeerOptions): Promise<PeerResult> };
  }
}

const logEl = document.getElementById('log');

function log(line: string): void {
  console.log(line);
  if (logEl) logEl.textContent += `${line}\n`;
}

async function loadOrt(): Promise<typeof Ort> {
  const url = `${ORT_BASE}ort.webgpu.min.mjs`;
  const ort = (await import(/* @vite-ignore */ url)) as typeof Ort;
  ort.env.wasm.wasmPaths = ORT_BASE;
  ort.env.wasm.numThreads = 1;
  ort.env.logLevel = 'error';
  return ort;
}

window.vlmeshBench = {
  async run(options: PeerOptions): Promise<PeerResult> {
    if (!navigator.gpu) throw new Error('this browser has no WebGPU (navigator.gpu is undefined)');
    const ort = await loadOrt();
    const ctx = await createGpuContext(navigator.gpu, { label: 'vlmesh-bench' });
    try {
      return await runPeerComparison(ctx, ort, options, log);
    } finally {
      ctx.destroy();
    }
  },
};
