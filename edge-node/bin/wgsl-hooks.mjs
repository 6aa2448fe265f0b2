// Node module hooks: `import src from './x.wgsl?raw'` yields the file's text, as under Vite.
import { readFile } from 'node:fs/promises';

const RAW = /\.wgsl\?raw$/;

export async function resolve(specifier, context, next) {
  if (RAW.test(specifier)) {
    return { url: new URL(specifier, context.parentURL).href, shortCircuit: true, format: 'module' };
  }
  return next(specifier, context);
}

export async function load(url, context, next) {
  if (RAW.test(url)) {
    const text = await readFile(new URL(url.replace(/\?raw$/, '')), 'utf8');
    return { format: 'module', source: `export default ${JSON.stringify(text)};`, shortCircuit: true };
  }
  return next(url, context);
}
