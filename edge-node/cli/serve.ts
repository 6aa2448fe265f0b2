/** `vlmesh serve`: the edge node. */
import type { AddressInfo } from 'node:net';
import { startServer } from '../server/http.ts';
import { parse, portArg, UsageError } from './args.ts';
import { doctorReport } from './doctor.ts';

export async function serveCommand(argv: string[]): Promise<number> {
  const { values } = parse(argv, {
    model: { type: 'string' },
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string' },
    'api-key': { type: 'string', multiple: true },
    'fallback-url': { type: 'string' },
    kiosk: { type: 'boolean', default: false },
  });
  if (values.model !== undefined) {
    throw new UsageError('--model: this version serves no model yet (only the adapter report); run without --model');
  }
  const server = await startServer({ host: values.host, port: portArg(values.port, 8080), doctor: doctorReport });
  const addr = server.address() as AddressInfo;
  console.log(`vlmesh serving on http://${addr.address}:${addr.port}/  (Ctrl-C to stop)`);
  await new Promise<void>((resolve) => {
    const stop = () => server.close(() => resolve());
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  return 0;
}
