/**
 * `vlmesh doctor [--json]`: the adapter (vendor, architecture, description, fallback or not),
 * its features, the limits that matter and the kernel variants chosen. Without an adapter it
 * says what to install and exits non-zero.
 */
import { NoAdapterError } from '../../shared/errors.ts';
import type { GpuContext } from '../../shared/gpu/context.ts';
import { createDawnContext, installAdvice } from '../gpu/dawn.ts';
import { parse } from './args.ts';

export interface DoctorReport {
  ok: boolean;
  backend: 'dawn';
  adapter?: GpuContext['adapter'];
  features?: string[];
  limits?: GpuContext['caps']['limits'];
  capabilities?: Omit<GpuContext['caps'], 'limits'>;
  variants?: GpuContext['variants'];
  error?: string;
  install?: string;
}

/** Builds the report from an open context. */
export function reportOf(ctx: GpuContext): DoctorReport {
  const { limits, ...capabilities } = ctx.caps;
  return {
    ok: true,
    backend: 'dawn',
    adapter: ctx.adapter,
    features: [...ctx.device.features].sort(),
    limits,
    capabilities,
    variants: ctx.variants,
  };
}

/** Opens the Dawn adapter and reports it; never throws for a missing adapter. */
export async function doctorReport(): Promise<DoctorReport> {
  let ctx: GpuContext;
  try {
    ctx = await createDawnContext({ label: 'vlmesh-doctor' });
  } catch (e) {
    if (e instanceof NoAdapterError) {
      return { ok: false, backend: 'dawn', error: e.message.split('\n')[0], install: installAdvice() };
    }
    throw e;
  }
  try {
    return reportOf(ctx);
  } finally {
    ctx.destroy();
  }
}

export function formatReport(r: DoctorReport): string {
  if (!r.ok) return `No WebGPU adapter (${r.backend}): ${r.error}\n\n${r.install}\n`;
  const a = r.adapter!;
  const mib = (n: number) => `${(n / 2 ** 20).toFixed(0)} MiB`;
  const l = r.limits!;
  const lines = [
    `adapter      ${a.description || a.device || '(no description)'}`,
    `vendor       ${a.vendor || '-'} / ${a.architecture || '-'}`,
    `fallback     ${a.isFallbackAdapter ? 'yes (software adapter: correct but slow)' : 'no'}`,
    `backend      ${r.backend}`,
    `features     ${r.features!.join(', ')}`,
    `shader-f16   ${r.capabilities!.f16 ? 'yes' : 'no'}    subgroups ${r.capabilities!.subgroups ? `yes (${r.capabilities!.subgroupMinSize}-${r.capabilities!.subgroupMaxSize})` : 'no'}`,
    `buffers      max ${mib(l.maxBufferSize)}, storage binding ${mib(l.maxStorageBufferBindingSize)}, ${l.maxStorageBuffersPerShaderStage} per stage, offset alignment ${l.minStorageBufferOffsetAlignment}`,
    `workgroups   ${l.maxComputeInvocationsPerWorkgroup} invocations, ${l.maxComputeWorkgroupStorageSize} B shared, ${l.maxComputeWorkgroupsPerDimension} per dimension`,
    `variants     weights ${r.variants!.weights}, prefill ${r.variants!.linearPrefill}, decode ${r.variants!.linearDecode}, odd shapes ${r.variants!.linearFallback}, sampling on ${r.variants!.sampling}`,
  ];
  return `${lines.join('\n')}\n`;
}

export async function doctorCommand(argv: string[]): Promise<number> {
  const { values } = parse(argv, { json: { type: 'boolean', default: false } });
  const report = await doctorReport();
  process.stdout.write(values.json ? `${JSON.stringify(report, null, 2)}\n` : formatReport(report));
  return report.ok ? 0 : 1;
}
