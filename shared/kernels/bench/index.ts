/**
 * Probe kernels of `vlmesh bench`: they measure the adapter, not the model.
 *
 *   fma-peak    independent fma chains per thread     peak f32 FMA throughput (compute roofline)
 *   copy-vec4   grid-stride vec4 copy                 copy bandwidth (memory roofline)
 */
export { COPY_VEC4, type CopyVec4Args, copyVec4, copyVec4Bytes } from './copy-vec4.ts';
export { FMA_CHAINS, FMA_PEAK, type FmaPeakArgs, fmaPeak, fmaPeakFlops } from './fma-peak.ts';
