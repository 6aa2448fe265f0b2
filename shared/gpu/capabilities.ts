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
  /**
   * Linear kernel for many-row (prefill) shapes when K % 4 == 0: `matmul-rows` on adapters that
   * run compute on CPU cores (lavapipe), where workgroup-memory tiling only adds loads.
   */
  linearPrefill: 'linear/matmul-vec4' | 'linear/matmul-rows' | 'linear/matmul-tiled';
  /** Linear kernel for few-row (decode) shapes when K % 4 == 0 (`matmul-rows` on lavapipe). */
  linearDecode: 'linear/gemv' | 'linear/matmul-rows';
  /** Linear kernel for any shape (odd K). */
  linearFallback: 'linear/matmul-tiled';
  /**
   * Decode attention: `decode-subgroup` (one subgroup per head, no workgroup memory) on lavapipe,
   * where it measured 4.3× decode-paged (Qwen3-VL-2B shapes, 129 to 1024 keys); `decode-paged`
   * elsewhere, and for head dims the subgroup size does not divide.
   */
  attentionDecode: 'attention/decode-paged' | 'attention/decode-subgroup';
  /** Where sampling runs. */
  sampling: 'gpu';
}

/**
 * True for Mesa's llvmpipe (lavapipe), which runs compute shaders on CPU cores with invocations
 * as SIMD lanes. Kernels are tuned separately for it where measurements say so.
 */
export function isLlvmpipe(adapter: AdapterDescription | undefined): boolean {
  if (!adapter) return false;
  return /llvmpipe|lavapipe/i.test(`${adapter.device} ${adapter.description} ${adapter.architecture}`);
}

/** The subgroup size when `subgroups` is enabled and the size is fixed (4, 8 or 16); else 0. */
export function fixedSubgroupSize(caps: Capabilities): number {
  const { subgroups, subgroupMinSize: lo, subgroupMaxSize: hi } = caps;
  return subgroups && lo === hi && (lo === 4 || lo === 8 || lo === 16) ? lo : 0;
}

/** The kernel variants for these capabilities (and, where it matters, this adapter). */
export function chooseVariants(caps: Capabilities, adapter?: AdapterDescription): KernelVariants {
  // llvmpipe: matmul-rows (register blocking + subgroup shuffles) for every vec4 shape; measured
  // 5-6× matmul-vec4 for prefill and 3-5× gemv for decode there.
  const rows = isLlvmpipe(adapter) && fixedSubgroupSize(caps) > 0;
  return {
    weights: caps.f16 ? WeightDType.F16 : WeightDType.F32,
    linearPrefill: rows ? 'linear/matmul-rows' : 'linear/matmul-vec4',
    linearDecode: rows ? 'linear/matmul-rows' : 'linear/gemv',
    linearFallback: 'linear/matmul-tiled',
    attentionDecode: rows ? 'attention/decode-subgroup' : 'attention/decode-paged',
    sampling: 'gpu',
  };
}
