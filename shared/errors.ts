/**
 * Typed errors. Every error carries a stable `code` and a message a user can act on.
 * Never flatten one of these into a string: callers switch on `code` (or `instanceof`).
 */
export class VlmeshError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** No WebGPU adapter could be obtained. */
export class NoAdapterError extends VlmeshError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('NO_ADAPTER', message, options);
  }
}

/** The adapter exists but lacks something the caller requires (a feature or a limit). */
export class UnsupportedAdapterError extends VlmeshError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('UNSUPPORTED_ADAPTER', message, options);
  }
}

/** A GPU validation error surfaced through an error scope or the uncaptured-error handler. */
export class GpuValidationError extends VlmeshError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('GPU_VALIDATION', message, options);
  }
}

/** The device ran out of memory while allocating a buffer or a pipeline. */
export class GpuOutOfMemoryError extends VlmeshError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('GPU_OUT_OF_MEMORY', message, options);
  }
}

/** An internal error reported by the WebGPU implementation. */
export class GpuInternalError extends VlmeshError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('GPU_INTERNAL', message, options);
  }
}

/** The device was lost (driver reset, destroyed, out of memory at the system level). */
export class DeviceLostError extends VlmeshError {
  readonly reason: string;
  constructor(reason: string, message: string) {
    super('DEVICE_LOST', message);
    this.reason = reason;
  }
}

/** A WGSL module failed to compile. The message holds the compiler's messages with line numbers. */
export class ShaderCompileError extends VlmeshError {
  constructor(message: string) {
    super('SHADER_COMPILE', message);
  }
}

/** A tensor handed to a kernel has the wrong shape, dtype or size. */
export class ShapeError extends VlmeshError {
  constructor(message: string) {
    super('SHAPE_MISMATCH', message);
  }
}
