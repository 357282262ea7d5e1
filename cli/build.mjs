// `npm run build`: bundle the CLI and the monitor into one ES module, dist/paxmon.mjs (esbuild;
// dependencies stay in node_modules). A monitor run from it starts in a fraction of the time and
// memory that tsx's on-the-fly compilation takes (tsx: ~116 MiB RSS idle, the bundle: ~77 MiB),
// so `npm start` and the benchmarks run it; the specs run the TypeScript sources through tsx.
import { build } from 'esbuild';

const root = new URL('..', import.meta.url);
await build({
  absWorkingDir: root.pathname,
  entryPoints: ['cli/main.ts'],
  outfile: 'dist/paxmon.mjs',
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  packages: 'external',
  sourcemap: 'linked',
  logLevel: 'warning',
});
