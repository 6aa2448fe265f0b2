/**
 * `vlmesh join --coordinator URL --token T --model M`: this machine becomes a mesh stage of the
 * coordinator at URL (a `vlmesh serve --mesh-token T`), serving the layers it is assigned until
 * interrupted or dropped.
 */
import { createDawnContext } from '../gpu/dawn.ts';
import { cleanupNodeWebRtc } from '../mesh/node-webrtc.ts';
import { joinMesh } from '../mesh/join.ts';
import { parse, UsageError } from './args.ts';
import { progressReporter, resolveModelPath } from './pull.ts';

export async function joinCommand(argv: string[]): Promise<number> {
  const { values } = parse(argv, {
    coordinator: { type: 'string' },
    token: { type: 'string' },
    model: { type: 'string' },
    dtype: { type: 'string' },
    'memory-mb': { type: 'string' },
    throughput: { type: 'string' },
    'bind-address': { type: 'string' },
    id: { type: 'string' },
  });
  if (!values.coordinator) throw new UsageError('join needs --coordinator URL (the vlmesh serve --mesh-token node)');
  if (!values.token) throw new UsageError('join needs --token T (the coordinator\'s --mesh-token)');
  if (!values.model) throw new UsageError('join needs --model M (this machine loads its layers from it)');
  if (values.dtype !== undefined && values.dtype !== 'f32' && values.dtype !== 'f16') throw new UsageError(`--dtype must be f32 or f16, got "${values.dtype}"`);
  const num = (name: string, v: string | undefined) => {
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!(n > 0) || !Number.isFinite(n)) throw new UsageError(`--${name} must be a positive number, got "${v}"`);
    return n;
  };
  const memoryMb = num('memory-mb', values['memory-mb']);
  const throughput = num('throughput', values.throughput);
  const dir = await resolveModelPath(values.model, { onProgress: progressReporter(process.stderr) });
  const ctx = await createDawnContext({ label: 'vlmesh-join' });
  try {
    const peer = await joinMesh({
      coordinator: values.coordinator,
      token: values.token,
      ctx,
      modelDir: dir,
      dtype: values.dtype as 'f32' | 'f16' | undefined,
      memoryBytes: memoryMb === undefined ? undefined : memoryMb * 2 ** 20,
      throughput,
      bindAddress: values['bind-address'],
      peerId: values.id,
    });
    process.stderr.write(`joined ${values.coordinator} as ${peer.id}; serving layers as assigned (Ctrl-C leaves)\n`);
    const onSignal = () => peer.close();
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    const reason = await peer.closed;
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    process.stderr.write(`left the mesh: ${reason}\n`);
    return 0;
  } finally {
    cleanupNodeWebRtc();
    ctx.destroy();
  }
}
