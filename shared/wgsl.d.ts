// WGSL files are imported as text: `import src from '../../shaders/x.wgsl?raw'`.
// Vite (and Vitest) handle `?raw` natively; the Node CLI registers an equivalent loader hook.
declare module '*.wgsl?raw' {
  const source: string;
  export default source;
}
