#!/usr/bin/env node
// The `vlmesh` command. Runs the TypeScript sources directly: tsx compiles them on the fly and
// a small loader hook imports `.wgsl?raw` files as strings (what Vite does in the browser).
import { register } from 'node:module';
import { register as registerTsx } from 'tsx/esm/api';

registerTsx();
register('./wgsl-hooks.mjs', import.meta.url);
const { main } = await import('../cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
