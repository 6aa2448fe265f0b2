/**
 * Typed errors of checkpoint reading. Each has a stable `code` (see shared/errors.ts) and a
 * message that names the file (and, where there is one, the tensor) so a user can act on it.
 */
import { VlmeshError } from '../errors.ts';

/**
 * A checkpoint is malformed, incomplete or does not match its config: bad safetensors header,
 * unsupported dtype, truncated file, missing shard, missing tensor, wrong shape.
 * `file` and `tensor` repeat what the message names, for callers that map errors to UI.
 */
export class CheckpointError extends VlmeshError {
  readonly file: string | undefined;
  readonly tensor: string | undefined;
  constructor(message: string, where: { file?: string; tensor?: string } = {}, options?: { cause?: unknown }) {
    super('BAD_CHECKPOINT', message, options);
    this.file = where.file;
    this.tensor = where.tensor;
  }
}

/** A byte source could not deliver the bytes asked for (read past its end, short read, I/O failure). */
export class ByteSourceError extends VlmeshError {
  readonly source: string;
  constructor(source: string, message: string, options?: { cause?: unknown }) {
    super('BYTE_SOURCE', message, options);
    this.source = source;
  }
}
