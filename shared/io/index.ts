/** Checkpoint reading: byte sources, safetensors (single and sharded), streaming upload to the GPU. */
export { blobDirectory, blobSource } from './blob-source.ts';
export {
  type ByteSource,
  type ByteSourceDirectory,
  checkReadRange,
  memoryDirectory,
  memorySource,
  readAll,
  readText,
} from './byte-source.ts';
export { ByteSourceError, CheckpointError } from './errors.ts';
export {
  Checkpoint,
  MAX_HEADER_BYTES,
  openCheckpoint,
  parseSafetensorsHeader,
  parseSafetensorsIndex,
  readSafetensorsHeader,
  SAFETENSORS_DTYPE_BYTES,
  SAFETENSORS_FILE,
  SAFETENSORS_INDEX_FILE,
  type SafetensorsDType,
  type SafetensorsHeader,
  type TensorInfo,
} from './safetensors.ts';
export {
  DEFAULT_UPLOAD_CHUNK_BYTES,
  decodeToF16,
  decodeToF32,
  readTensorF32,
  type UploadOptions,
  uploadTensor,
  type WeightDType,
} from './upload.ts';
