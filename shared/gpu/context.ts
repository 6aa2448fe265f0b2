/**
 * The GPU runtime: one `GpuContext` per device. It owns the buffer pool, the pipeline cache,
 * the command encoder that batches dispatches, and error/loss reporting.
 *
 * Errors are never swallowed: pipeline creation and every submit run inside error scopes whose
 * results are collected; `sync()` (and every readback) throws the first one as a typed error.
 * Uncaptured errors and device loss are recorded the same way.
 */
import {
  DeviceLostError,
  GpuInternalError,
  GpuOutOfMemoryError,
  GpuValidationError,
  NoAdapterError,
  ShaderCompileError,
  ShapeError,
  type VlmeshError,
} from '../errors.ts';
import { BufferPool, type BufferPoolStats } from './buffer-pool.ts';
import {
  type AdapterDescription,
  type Capabilities,
  chooseVariants,
  type KernelVariants,
  USEFUL_FEATURES,
  USEFUL_LIMITS,
  type UsefulLimit,
} from './capabilities.ts';
import { type AnyHostArray, type DType, dtypeBytes, elementCount } from './dtype.ts';
import { fromF16Array } from './f16.ts';
import { type ProgramCall, type ProgramInfo, packUniforms } from './program.ts';
import { isView, Tensor, type TensorView } from './tensor.ts';

export interface GpuContextOptions {
  /** Label prefix for the device. */
  label?: string;
  /** Print (or hand to this function) the assembled WGSL of every pipeline compiled. */
  debugWgsl?: boolean | ((name: string, wgsl: string) => void);
  /** Do not enable `shader-f16` even when present (forces f32 kernels). */
  disableF16?: boolean;
  /** Do not enable `subgroups` even when present. */
  disableSubgroups?: boolean;
  /** Cap the storage window size below the device limit (tests of windowed kernels). */
  maxBindingBytes?: number;
  /** Called once when the device is lost for a reason other than `destroy()`. */
  onDeviceLost?: (err: DeviceLostError) => void;
  /** Power preference passed to `requestAdapter`. */
  powerPreference?: GPUPowerPreference;
}

/** Counters of the work a context has sent to the queue (for tests and benchmarks). */
export interface GpuStats {
  /** `queue.submit` calls: one per flushed batch (reads and clears ride in the batch). */
  submits: number;
  /** `queue.writeBuffer` calls of tensor data (uniforms excluded). */
  writes: number;
  /** Batches flushed early because a write targeted a buffer the open batch still uses. */
  hazardFlushes: number;
}

interface CachedPipeline {
  pipeline: GPUComputePipeline;
  layout: GPUBindGroupLayout;
}

const STORAGE = 0x80; // GPUBufferUsage.STORAGE
const COPY_SRC = 0x04;
const COPY_DST = 0x08;
const MAP_READ = 0x01;
const UNIFORM = 0x40;

function describeAdapter(adapter: GPUAdapter): AdapterDescription {
  const info = adapter.info as GPUAdapterInfo & { isFallbackAdapter?: boolean };
  const legacy = adapter as GPUAdapter & { isFallbackAdapter?: boolean };
  return {
    vendor: info?.vendor ?? '',
    architecture: info?.architecture ?? '',
    device: info?.device ?? '',
    description: info?.description ?? '',
    isFallbackAdapter: Boolean(info?.isFallbackAdapter ?? legacy.isFallbackAdapter ?? false),
  };
}

/**
 * Requests an adapter and a device with the useful maximum limits and features.
 *
 * @example
 * const ctx = await createGpuContext(navigator.gpu);
 * const t = ctx.upload(new Float32Array([1, 2, 3]), [3], 'f32', 'x');
 * console.log(await ctx.readF32(t));
 */
export async function createGpuContext(gpu: GPU, options: GpuContextOptions = {}): Promise<GpuContext> {
  const adapter = await gpu.requestAdapter({ powerPreference: options.powerPreference ?? 'high-performance' });
  if (!adapter) {
    throw new NoAdapterError('navigator.gpu.requestAdapter() returned no adapter: this system has no usable WebGPU.');
  }
  const features: GPUFeatureName[] = [];
  for (const f of USEFUL_FEATURES) {
    if (!adapter.features.has(f)) continue;
    if (f === 'shader-f16' && options.disableF16) continue;
    if (f === 'subgroups' && options.disableSubgroups) continue;
    features.push(f as GPUFeatureName);
  }
  const requiredLimits: Record<string, number> = {};
  for (const name of USEFUL_LIMITS) {
    const v = (adapter.limits as unknown as Record<string, number>)[name];
    if (typeof v === 'number') requiredLimits[name] = v;
  }
  // Alignments are "better" when lower: ask for the adapter's own.
  for (const name of ['minStorageBufferOffsetAlignment', 'minUniformBufferOffsetAlignment'] as const) {
    requiredLimits[name] = adapter.limits[name];
  }
  const device = await adapter.requestDevice({
    label: options.label ?? 'vlmesh',
    requiredFeatures: features,
    requiredLimits,
  });
  return new GpuContext(adapter, device, options);
}

export class GpuContext {
  readonly adapter: AdapterDescription;
  readonly caps: Capabilities;
  readonly variants: KernelVariants;
  readonly pool: BufferPool;
  private readonly pipelines = new Map<string, CachedPipeline>();
  private readonly pendingScopes: Promise<VlmeshError | null>[] = [];
  private readonly errors: VlmeshError[] = [];
  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  private pendingUniforms: GPUBuffer[] = [];
  /** Buffers the open encoder reads or writes: a host write to one of them must flush first. */
  private readonly encoded = new Set<GPUBuffer>();
  private lostError: DeviceLostError | null = null;
  private destroyed = false;
  private dummy: Tensor | null = null;
  private debugWgsl: GpuContextOptions['debugWgsl'];
  /** Dispatches encoded since the context began (for tests and benchmarks). */
  dispatchCount = 0;
  /** Submits and writes since the context began (for tests and benchmarks). */
  readonly stats: GpuStats = { submits: 0, writes: 0, hazardFlushes: 0 };

  constructor(
    gpuAdapter: GPUAdapter,
    readonly device: GPUDevice,
    options: GpuContextOptions = {},
  ) {
    this.adapter = describeAdapter(gpuAdapter);
    this.debugWgsl = options.debugWgsl;
    const limits = {} as Capabilities['limits'];
    for (const name of USEFUL_LIMITS) {
      (limits as Record<UsefulLimit, number>)[name] = (device.limits as unknown as Record<string, number>)[name];
    }
    limits.minStorageBufferOffsetAlignment = device.limits.minStorageBufferOffsetAlignment;
    const info = gpuAdapter.info as GPUAdapterInfo & { subgroupMinSize?: number; subgroupMaxSize?: number };
    const maxBinding = Math.min(device.limits.maxStorageBufferBindingSize, device.limits.maxBufferSize);
    this.caps = {
      f16: device.features.has('shader-f16'),
      subgroups: device.features.has('subgroups'),
      subgroupMinSize: info?.subgroupMinSize ?? 0,
      subgroupMaxSize: info?.subgroupMaxSize ?? 0,
      timestampQuery: device.features.has('timestamp-query'),
      limits,
      maxBindingBytes: Math.min(maxBinding, options.maxBindingBytes ?? maxBinding),
    };
    this.variants = chooseVariants(this.caps, this.adapter);
    this.pool = new BufferPool((size, usage, label) => device.createBuffer({ size, usage, label }));
    device.addEventListener('uncapturederror', (ev) => {
      this.errors.push(toTypedError((ev as GPUUncapturedErrorEvent).error, 'uncaptured'));
    });
    device.lost.then((info) => {
      if (this.destroyed) return;
      this.lostError = new DeviceLostError(
        info.reason,
        `the GPU device was lost (${info.reason}): ${info.message || 'no message'}. Reload the page or restart the process.`,
      );
      options.onDeviceLost?.(this.lostError);
    });
  }

  /** Turns printing of assembled WGSL on or off (the debug switch). */
  setDebugWgsl(value: GpuContextOptions['debugWgsl']): void {
    this.debugWgsl = value;
  }

  /** Throws if the device was lost or destroyed. */
  assertAlive(): void {
    if (this.lostError) throw this.lostError;
    if (this.destroyed) throw new DeviceLostError('destroyed', 'this GPU context was destroyed');
  }

  get isLost(): boolean {
    return this.lostError !== null;
  }

  // ---------------------------------------------------------------- tensors

  /** An uninitialised tensor from the pool. */
  empty(shape: readonly number[], dtype: DType, label: string): Tensor {
    return this.fromPool(shape, dtype, label, false);
  }

  private fromPool(shape: readonly number[], dtype: DType, label: string, unusedByBatch: boolean): Tensor {
    this.assertAlive();
    const bytes = alignTo(elementCount(shape) * dtypeBytes(dtype), 4);
    if (bytes > this.caps.limits.maxBufferSize) {
      throw new GpuOutOfMemoryError(
        `tensor "${label}" [${shape}] ${dtype} needs ${bytes} bytes, above this adapter's maxBufferSize ${this.caps.limits.maxBufferSize}`,
      );
    }
    const avoid = unusedByBatch && this.encoded.size > 0 ? (b: GPUBuffer) => this.encoded.has(b) : undefined;
    const buf = this.pool.acquire(bytes, STORAGE | COPY_SRC | COPY_DST, label, avoid);
    return new Tensor(buf, shape, dtype, label, (b) => this.pool.release(b));
  }

  /** A tensor filled with zeros (the clear is encoded into the current batch). */
  zeros(shape: readonly number[], dtype: DType, label: string): Tensor {
    const t = this.empty(shape, dtype, label);
    const enc = this.batchEncoder();
    enc.clearBuffer(t.buffer, 0, t.buffer.size);
    this.encoded.add(t.buffer);
    return t;
  }

  /**
   * Uploads host data. f16 data is given as raw 16-bit patterns. The tensor's buffer is one the
   * open batch does not use, so the upload never forces an early submit.
   */
  upload(data: AnyHostArray, shape: readonly number[], dtype: DType, label: string): Tensor {
    const n = elementCount(shape);
    if (data.length !== n) {
      throw new ShapeError(`upload of "${label}": ${data.length} values for shape [${shape}] (${n} elements)`);
    }
    const t = this.fromPool(shape, dtype, label, true);
    this.write(t, data);
    return t;
  }

  /** Writes host data into a tensor, starting at element `offset`. */
  write(t: Tensor, data: AnyHostArray, offset = 0): void {
    this.assertAlive();
    // queue.writeBuffer runs ahead of commands still in the open encoder: when that encoder uses
    // this buffer (a pooled buffer released and acquired again within the batch, or a tensor
    // rewritten between dispatches), submit it first so earlier encoded work sees the old data.
    // Writes to buffers the batch does not touch go straight to the queue: the small per-step
    // inputs of a decode step cost no extra submit.
    if (this.encoded.has(t.buffer)) {
      this.stats.hazardFlushes++;
      this.flush();
    }
    const bpe = dtypeBytes(t.dtype);
    if (data.BYTES_PER_ELEMENT !== bpe) {
      throw new ShapeError(`write to "${t.label}" (${t.dtype}) got a ${data.constructor.name}`);
    }
    if (offset + data.length > t.size) {
      throw new ShapeError(`write of ${data.length} elements at ${offset} overflows "${t.label}" (${t.size})`);
    }
    // writeBuffer needs 4-byte multiples: pad an odd f16 tail with a zero.
    let bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    let byteOffset = offset * bpe;
    if (byteOffset % 4 !== 0) {
      throw new ShapeError(`write to "${t.label}" at element ${offset} is not 4-byte aligned`);
    }
    if (bytes.byteLength % 4 !== 0) {
      const padded = new Uint8Array(alignTo(bytes.byteLength, 4));
      padded.set(bytes);
      bytes = padded;
    }
    // Chunk large writes so no single staging copy is huge.
    const CHUNK = 64 << 20;
    for (let i = 0; i < bytes.byteLength; i += CHUNK) {
      const part = bytes.subarray(i, Math.min(bytes.byteLength, i + CHUNK));
      this.device.queue.writeBuffer(t.buffer, byteOffset, part.buffer, part.byteOffset, part.byteLength);
      this.stats.writes++;
      byteOffset += part.byteLength;
    }
  }

  /** Reads a tensor (or view) back as its host array type. */
  async read(src: Tensor | TensorView): Promise<AnyHostArray> {
    const t = isView(src) ? src.tensor : src;
    const offset = isView(src) ? src.offset : 0;
    const size = isView(src) ? src.size : t.size;
    const bpe = dtypeBytes(t.dtype);
    const start = offset * bpe;
    const alignedStart = start - (start % 4);
    const byteLen = alignTo(start + size * bpe, 4) - alignedStart;
    const staging = this.pool.acquire(byteLen, MAP_READ | COPY_DST, `${t.label}:readback`);
    // The copy rides at the end of the open batch: a step's work and its readback are one submit.
    this.batchEncoder().copyBufferToBuffer(t.buffer, alignedStart, staging, 0, byteLen);
    await this.sync();
    await staging.mapAsync(MAP_READ, 0, byteLen);
    const copy = staging.getMappedRange(0, byteLen).slice(0);
    staging.unmap();
    this.pool.release(staging);
    const skip = (start - alignedStart) / bpe;
    switch (t.dtype) {
      case 'f32':
        return new Float32Array(copy, 0, size);
      case 'f16':
        return new Uint16Array(copy, skip * 2, size);
      case 'u32':
        return new Uint32Array(copy, 0, size);
      case 'i32':
        return new Int32Array(copy, 0, size);
    }
  }

  /** Reads a f32 or f16 tensor back as Float32Array. */
  async readF32(src: Tensor | TensorView): Promise<Float32Array> {
    const data = await this.read(src);
    if (data instanceof Float32Array) return data;
    if (data instanceof Uint16Array) return fromF16Array(data);
    throw new ShapeError(`readF32 of an integer tensor "${(isView(src) ? src.tensor : src).label}"`);
  }

  /** A 16-byte tensor bound where a kernel's optional input is absent. */
  dummyTensor(): Tensor {
    if (!this.dummy) this.dummy = this.zeros([4], 'f32', 'dummy');
    return this.dummy;
  }

  // ---------------------------------------------------------------- pipelines

  /** The pipeline for a program, compiled once per `name|cacheKey`. */
  pipeline(info: ProgramInfo): CachedPipeline {
    const key = `${info.name}|${info.cacheKey}`;
    const hit = this.pipelines.get(key);
    if (hit) return hit;
    const code = info.source();
    if (this.debugWgsl) {
      if (typeof this.debugWgsl === 'function') this.debugWgsl(info.name, code);
      else console.log(`// ----- WGSL ${key}\n${code}`);
    }
    const label = `${info.name}[${info.cacheKey}]`;
    const device = this.device;
    device.pushErrorScope('out-of-memory');
    device.pushErrorScope('validation');
    const module = device.createShaderModule({ label, code });
    const entries: GPUBindGroupLayoutEntry[] = info.access.map((a, i) => ({
      binding: i,
      visibility: 4, // GPUShaderStage.COMPUTE
      buffer: { type: a === 'read' ? 'read-only-storage' : 'storage' },
    }));
    entries.push({ binding: info.access.length, visibility: 4, buffer: { type: 'uniform' } });
    const layout = device.createBindGroupLayout({ label, entries });
    const pipeline = device.createComputePipeline({
      label,
      layout: device.createPipelineLayout({ label, bindGroupLayouts: [layout] }),
      compute: { module, entryPoint: 'main' },
    });
    const validation = device.popErrorScope();
    const oom = device.popErrorScope();
    this.pendingScopes.push(
      validation.then(async (err) => {
        if (!err) return null;
        const info2 = await module.getCompilationInfo();
        const msgs = info2.messages
          .filter((m) => m.type === 'error')
          .map((m) => `  line ${m.lineNum}:${m.linePos}: ${m.message}`)
          .join('\n');
        if (msgs) return new ShaderCompileError(`WGSL of ${label} does not compile:\n${msgs}`);
        return new GpuValidationError(`creating pipeline ${label}: ${err.message}`);
      }),
      oom.then((err) => (err ? new GpuOutOfMemoryError(`creating pipeline ${label}: ${err.message}`) : null)),
    );
    const entry = { pipeline, layout };
    this.pipelines.set(key, entry);
    return entry;
  }

  /** Number of distinct pipelines compiled so far. */
  get pipelineCount(): number {
    return this.pipelines.size;
  }

  // ---------------------------------------------------------------- dispatch

  /** Encodes one dispatch into the current batch. Call `flush()`/`sync()` to submit. */
  run(call: ProgramCall): void {
    this.assertAlive();
    const { info } = call;
    if (call.bindings.length !== info.access.length) {
      throw new ShapeError(`${info.name}: ${call.bindings.length} bindings given, kernel declares ${info.access.length}`);
    }
    const { pipeline, layout } = this.pipeline(info);
    const uniformData = packUniforms(call.uniforms ?? []);
    const ubuf = this.pool.acquire(uniformData.byteLength, UNIFORM | COPY_DST, `${info.name}:params`);
    this.device.queue.writeBuffer(ubuf, 0, uniformData);
    this.pendingUniforms.push(ubuf);
    const entries: GPUBindGroupEntry[] = call.bindings.map((b, i) => {
      const t = isView(b) ? b.tensor : b;
      if (t.isReleased) throw new ShapeError(`${info.name}: binding ${i} ("${t.label}") was released`);
      const bpe = dtypeBytes(t.dtype);
      const offset = isView(b) ? b.offset * bpe : 0;
      const size = alignTo((isView(b) ? b.size : t.size) * bpe, 4);
      if (offset % this.caps.limits.minStorageBufferOffsetAlignment !== 0) {
        throw new ShapeError(
          `${info.name}: binding ${i} ("${t.label}") offset ${offset} bytes is not a multiple of ${this.caps.limits.minStorageBufferOffsetAlignment}`,
        );
      }
      if (size > this.caps.limits.maxStorageBufferBindingSize) {
        throw new ShapeError(
          `${info.name}: binding ${i} ("${t.label}") is ${size} bytes, above maxStorageBufferBindingSize ${this.caps.limits.maxStorageBufferBindingSize}; process it in windows`,
        );
      }
      return { binding: i, resource: { buffer: t.buffer, offset, size: Math.min(size, t.buffer.size - offset) } };
    });
    entries.push({ binding: call.bindings.length, resource: { buffer: ubuf, offset: 0, size: uniformData.byteLength } });
    const group = this.device.createBindGroup({ label: info.name, layout, entries });
    const [x, y, z] = call.workgroups;
    const maxDim = this.caps.limits.maxComputeWorkgroupsPerDimension;
    if (x > maxDim || y > maxDim || z > maxDim) {
      throw new ShapeError(`${info.name}: dispatch (${x}, ${y}, ${z}) exceeds ${maxDim} workgroups per dimension`);
    }
    for (const b of call.bindings) this.encoded.add(isView(b) ? b.tensor.buffer : b.buffer);
    // Consecutive dispatches share one compute pass: each dispatch is its own usage scope, so the
    // implementation still orders a dispatch's reads after the previous one's writes.
    const pass = this.computePass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, group);
    pass.dispatchWorkgroups(x, y, z);
    this.dispatchCount++;
  }

  /**
   * Encodes a copy of `src` into `dst` (same dtype, same element count) into the current batch,
   * in order with the dispatches around it. Byte offsets and sizes must be multiples of 4.
   */
  copy(src: Tensor | TensorView, dst: Tensor | TensorView): void {
    this.assertAlive();
    const s = isView(src) ? src : src.view(0, src.size);
    const d = isView(dst) ? dst : dst.view(0, dst.size);
    if (s.tensor.dtype !== d.tensor.dtype || s.size !== d.size) {
      throw new ShapeError(
        `copy "${s.tensor.label}" → "${d.tensor.label}": ${s.size} ${s.tensor.dtype} into ${d.size} ${d.tensor.dtype}`,
      );
    }
    const bpe = dtypeBytes(s.tensor.dtype);
    const [so, dof, n] = [s.offset * bpe, d.offset * bpe, s.size * bpe];
    if (so % 4 || dof % 4 || n % 4) {
      throw new ShapeError(`copy "${s.tensor.label}" → "${d.tensor.label}": offsets and size must be multiples of 4 bytes`);
    }
    if (n === 0) return;
    this.batchEncoder().copyBufferToBuffer(s.tensor.buffer, so, d.tensor.buffer, dof, n);
    this.encoded.add(s.tensor.buffer);
    this.encoded.add(d.tensor.buffer);
  }

  /** The open batch's encoder outside any pass (for copies and clears), created on first use. */
  private batchEncoder(): GPUCommandEncoder {
    this.endPass();
    if (!this.encoder) this.encoder = this.device.createCommandEncoder({ label: 'vlmesh-batch' });
    return this.encoder;
  }

  /** The open compute pass of the batch, begun on first use after a copy or a flush. */
  private computePass(): GPUComputePassEncoder {
    if (!this.pass) this.pass = this.batchEncoder().beginComputePass({ label: 'vlmesh-dispatches' });
    return this.pass;
  }

  private endPass(): void {
    if (!this.pass) return;
    this.pass.end();
    this.pass = null;
  }

  /** Submits the encoded batch (inside error scopes). Does not wait. */
  flush(): void {
    if (!this.encoder) return;
    this.endPass();
    const enc = this.encoder;
    this.encoder = null;
    this.encoded.clear();
    const device = this.device;
    device.pushErrorScope('out-of-memory');
    device.pushErrorScope('validation');
    device.pushErrorScope('internal');
    device.queue.submit([enc.finish()]);
    this.stats.submits++;
    const internal = device.popErrorScope();
    const validation = device.popErrorScope();
    const oom = device.popErrorScope();
    this.pendingScopes.push(
      internal.then((e) => (e ? new GpuInternalError(`submit: ${e.message}`) : null)),
      validation.then((e) => (e ? new GpuValidationError(`submit: ${e.message}`) : null)),
      oom.then((e) => (e ? new GpuOutOfMemoryError(`submit: ${e.message}`) : null)),
    );
    for (const u of this.pendingUniforms) this.pool.release(u);
    this.pendingUniforms = [];
  }

  /** Submits pending work, waits for the queue, and throws the first error seen since the last sync. */
  async sync(): Promise<void> {
    this.flush();
    this.assertAlive();
    await this.device.queue.onSubmittedWorkDone();
    const scopes = this.pendingScopes.splice(0);
    for (const e of await Promise.all(scopes)) if (e) this.errors.push(e);
    this.assertAlive();
    const first = this.errors.shift();
    this.errors.length = 0;
    if (first) throw first;
  }

  /** Runs `fn` and checks, precisely for it, the errors it caused (allocation, upload, compile). */
  async checked<T>(what: string, fn: () => T): Promise<T> {
    this.flush();
    const device = this.device;
    device.pushErrorScope('out-of-memory');
    device.pushErrorScope('validation');
    let result: T | undefined;
    let thrown: unknown = null;
    try {
      result = fn();
      this.flush();
    } catch (e) {
      thrown = e;
    }
    const v = await device.popErrorScope();
    const o = await device.popErrorScope();
    if (o) throw new GpuOutOfMemoryError(`${what}: ${o.message}`);
    if (v) throw new GpuValidationError(`${what}: ${v.message}`);
    if (thrown) throw thrown;
    await this.sync();
    return result as T;
  }

  get poolStats(): BufferPoolStats {
    return this.pool.stats;
  }

  /** Destroys the device; the context is unusable afterwards. */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.pass = null;
    this.encoder = null;
    this.encoded.clear();
    this.pool.trim();
    this.device.destroy();
  }
}

function toTypedError(err: GPUError, where: string): VlmeshError {
  const name = (err as { constructor?: { name?: string } }).constructor?.name ?? '';
  if (name.includes('OutOfMemory')) return new GpuOutOfMemoryError(`${where}: ${err.message}`);
  if (name.includes('Internal')) return new GpuInternalError(`${where}: ${err.message}`);
  return new GpuValidationError(`${where}: ${err.message}`);
}

export function alignTo(n: number, a: number): number {
  return Math.ceil(n / a) * a;
}
