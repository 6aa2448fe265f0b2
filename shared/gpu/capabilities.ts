/**
 * What an adapter can do, read once when the device is made, and the kernel variants that follow
 * from it. `vlmesh doctor` prints both.
 */
export interface AdapterDescription {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  isFallbackAdapter: boolean;
}

/** Limits requested at the adapter's maximum because kernels or big tensors need them. */
export const USEFUL_LIMITS = [
  'maxBufferSize',
  'maxStorageBufferBindingSize',
  'maxStorageBuffersPerShaderStage',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupSizeY',
  'maxComputeWorkgroupSizeZ',
  'maxComputeWorkgroupsPerDimension',
  'maxUniformBufferBindingSize',
  'maxBindGroups',
] as const;

export type UsefulLimit = (typeof USEFUL_LIMITS)[number];

/** Optional features requested when present. */
export const USEFUL_FEATURES = ['shader-f16', 'subgroups', 'timestamp-query'] as const;

export interface Capabilities {
  /** `shader-f16` is enabled: f16 storage and arithmetic in WGSL. */
  f16: boolean;
  /** `subgroups` is enabled. */
  subgroups: boolean;
  subgroupMinSize: number;
  subgroupMaxSize: number;
  timestampQuery: boolean;
  limits: Record<UsefulLimit, number> & { minStorageBufferOffsetAlignment: number };
  /**
   * Largest window (bytes) bound as one storage binding. Normally the device's
   * `maxStorageBufferBindingSize`; tests may lower it to exercise windowing with small tensors.
   */
  maxBindingBytes: number;
}

/** Weight storage for matmul weights. */
export enum WeightDType {
  F32 = 'f32',
  F16 = 'f16',
}

/** The kernel variants this adapter allows, chosen once. */
export interface KernelVariants {
  /** Weight dtype used for model weights (f16 when the adapter has shader-f16). */
  weights: WeightDType;
  /** Linear kernel for many-row (prefill) shapes when K % 4 == 0. */
  linearPrefill: 'linear/matmul-vec4' | 'linear/matmul-tiled';
  /** Linear kernel for few-row (decode) shapes when K % 4 == 0. */
  linearDecode: 'linear/gemv';
  /** Linear kernel for any shape (odd K). */
  linearFallback: 'linear/matmul-tiled';
  /** Where sampling runs. */
  sampling: 'gpu';
}

export function chooseVariants(caps: Capabilities): KernelVariants {
  return {
    weights: caps.f16 ? WeightDType.F16 : WeightDType.F32,
    linearPrefill: 'linear/matmul-vec4',
    linearDecode: 'linear/gemv',
    linearFallback: 'linear/matmul-tiled',
    sampling: 'gpu',
  };
}
