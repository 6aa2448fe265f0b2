/**
 * The side-by-side MatMul comparison with onnxruntime-web (shared/bench/peer.ts) in this Node
 * process, on Dawn: the same adapter as every other figure of `vlmesh bench` (lavapipe on a
 * machine without a GPU), where the Chromium run (ort-peer.ts) only reaches SwiftShader.
 *
 * onnxruntime-web's WebGPU execution provider (its C++ EP compiled to wasm) runs on any
 * `navigator.gpu`; this module gives it Dawn's and makes two allowances:
 * - its wasm memory is a SharedArrayBuffer (every build is threaded), and Dawn for Node cannot
 *   read a view of one in `GPUQueue.writeBuffer` (it fails with "Invalid argument", or crashes);
 *   the patch below copies such views into a plain buffer first — only in a process that runs
 *   this comparison;
 * - ORT requests its own adapter and device from `navigator.gpu` (the same adapter; its device is
 *   `ort.env.webgpu.device`).
 *
 * The first GPU submission of ORT in a process takes tens of seconds on lavapipe (once; later
 * shapes compile in milliseconds): `runPeerComparison` times only after a warm-up run.
 */
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { pathToFileURL } from 'node:url';
import { type PeerOptions, type PeerResult, runPeerComparison } from '../../shared/bench/peer.ts';
import type { GpuContext } from '../../shared/gpu/context.ts';
import { dawnGpu } from '../gpu/dawn.ts';
import { PeerBenchError } from './ort-peer.ts';

type WriteBuffer = (buffer: GPUBuffer, offset: number, data: BufferSource, dataOffset?: number, size?: number) => undefined;

let patched = false;

/** Makes `GPUQueue.writeBuffer` accept views of a SharedArrayBuffer (copied; see the module header). */
function acceptSharedViews(): void {
  if (patched) return;
  const proto = (globalThis as { GPUQueue?: { prototype: { writeBuffer: WriteBuffer } } }).GPUQueue?.prototype;
  if (!proto) throw new PeerBenchError('the WebGPU globals are not installed (Dawn not loaded)');
  const original = proto.writeBuffer;
  proto.writeBuffer = function (this: GPUQueue, buffer, offset, data, dataOffset = 0, size) {
    const view = data as ArrayBufferView & { BYTES_PER_ELEMENT?: number; length?: number };
    if (ArrayBuffer.isView(view) && view.buffer instanceof SharedArrayBuffer) {
      const el = view.BYTES_PER_ELEMENT ?? 1;
      const n = size ?? (view.length ?? view.byteLength) - dataOffset;
      // A copy into a plain ArrayBuffer (SharedArrayBuffer.slice would give another shared one).
      const copy = new Uint8Array(new Uint8Array(view.buffer, view.byteOffset + dataOffset * el, n * el));
      return original.call(this, buffer, offset, copy, 0, n * el);
    }
    return original.call(this, buffer, offset, data, dataOffset, size);
  };
  patched = true;
}

/**
 * Runs ORT's WebGPU MatMul and ours on `ctx`'s adapter in this process.
 *
 * @throws PeerBenchError when onnxruntime-web (a devDependency) is missing or fails to start.
 * @example
 * const r = await runOrtInNode(ctx, { shapes, repeats: 5, targetMs: 40, limits: false });
 */
export async function runOrtInNode(ctx: GpuContext, o: PeerOptions, onProgress?: (line: string) => void): Promise<PeerResult> {
  let dist: string;
  try {
    dist = dirname(createRequire(import.meta.url).resolve('onnxruntime-web'));
  } catch (e) {
    throw new PeerBenchError('onnxruntime-web is not installed (a devDependency): run `npm ci` with dev dependencies', { cause: e });
  }
  const gpu = dawnGpu();
  acceptSharedViews();
  const g = globalThis as { navigator?: { gpu?: GPU } };
  if (!g.navigator) Object.defineProperty(globalThis, 'navigator', { value: {}, configurable: true, writable: true });
  if (g.navigator!.gpu !== gpu) Object.defineProperty(g.navigator!, 'gpu', { value: gpu, configurable: true });
  let ort: typeof import('onnxruntime-web');
  try {
    ort = (await import('onnxruntime-web/webgpu')) as typeof import('onnxruntime-web');
  } catch (e) {
    throw new PeerBenchError(`onnxruntime-web's WebGPU build did not load: ${(e as Error).message}`, { cause: e });
  }
  ort.env.wasm.wasmPaths = `${pathToFileURL(dist).href}/`;
  ort.env.wasm.numThreads = 1;
  ort.env.logLevel = 'error';
  try {
    return await runPeerComparison(ctx, ort, o, onProgress);
  } catch (e) {
    throw new PeerBenchError(`onnxruntime-web on Dawn failed: ${(e as Error).message}`, { cause: e });
  }
}
