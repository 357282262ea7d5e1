// `npm run build`: the JavaScript that the package ships and `npm start` and the benchmarks run,
// built from the TypeScript sources (the specs run the sources themselves, through tsx):
//
//   dist/paxmon.mjs     the `paxmon` command (cli/bin.js, package.json's "bin", runs it), from cli/paxmon.ts
//   dist/index.mjs      the package root (package.json "exports"), from index.ts
//   dist/testing.mjs    paxmon/testing (exports["./testing"]): the test kit, from testing/index.ts
//   dist/chunks/*.mjs   code the two share, and what the command loads only when a command needs
//                       it (import()): the daemon commands (RocksDB, the statecharts), the
//                       inspection ones. A client command (quorum_status, config-key…) loads
//                       paxmon.mjs and the chunks it imports statically, nothing else.
//   *.map               source maps, with the TypeScript sources in them
//   dist/dashboard/     the dashboard's page (index.html, page.js, page.css), for the browser
//   dist/types/**.d.ts  with --types (npm pack, through prepack): the declarations, from tsc
//
// esbuild bundles the packages on a client command's path (commander, TypeBox, msgpackr,
// nanoid: TypeBox alone is ~200 ES modules to resolve and read one by one, a third of a client
// command's time) and leaves the others to node_modules: xstate (an app's createActor and
// paxmon's machines must share one XState), RocksDB and msgpackr-extract (native), pino and its
// transports (worker files), ws, @statelyai/inspect, cli-progress.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = fileURLToPath(new URL('..', import.meta.url));
const dist = join(root, 'dist');
const external = [
  'xstate',
  'rocksdb',
  'msgpackr-extract',
  'pino',
  'pino-pretty',
  'ws',
  '@statelyai/inspect',
  'cli-progress',
];

const result = await build({
  absWorkingDir: root,
  entryPoints: { paxmon: 'cli/paxmon.ts', index: 'index.ts', testing: 'testing/index.ts' },
  outdir: 'dist',
  outExtension: { '.js': '.mjs' },
  chunkNames: 'chunks/[name]-[hash]',
  bundle: true,
  splitting: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  external,
  sourcemap: 'linked',
  metafile: true,
  logLevel: 'warning',
  // The bundled CommonJS packages (commander, msgpackr) call require(): ES modules have none.
  banner: {
    js: "import { createRequire as __paxmonCreateRequire } from 'node:module';\nconst require = __paxmonCreateRequire(import.meta.url);",
  },
});

// The dashboard's page (paxmon dashboard, paxmon up --dashboard), for the browser: one script with
// every library it uses bundled in (elkjs lays out the statecharts), its stylesheet and its HTML.
// The browser loads these three files from paxmon's own server and nothing from anywhere else.
const page = join(dist, 'dashboard');
await build({
  absWorkingDir: root,
  entryPoints: { page: 'dashboard/page/main.ts' },
  outdir: 'dist/dashboard',
  bundle: true,
  platform: 'browser',
  format: 'esm',
  target: 'chrome110',
  minify: true,
  sourcemap: false,
  legalComments: 'none',
  logLevel: 'warning',
});
writeFileSync(join(page, 'page.css'), readFileSync(join(root, 'dashboard/page/style.css')));
writeFileSync(join(page, 'index.html'), readFileSync(join(root, 'dashboard/page/index.html')));

// Chunks of earlier builds (their names carry a content hash) go, so dist/ holds one build.
const built = new Set(Object.keys(result.metafile.outputs).map((file) => join(root, file)));
const chunks = join(dist, 'chunks');
for (const name of existsSync(chunks) ? readdirSync(chunks) : []) {
  const file = join(chunks, name);
  if (!built.has(file) && !built.has(file.replace(/\.map$/, ''))) rmSync(file, { force: true });
}

if (process.argv.includes('--types')) {
  const types = join(dist, 'types');
  rmSync(types, { recursive: true, force: true });
  const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
  try {
    execFileSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.build.json')], {
      cwd: root,
      stdio: 'inherit',
    });
  } catch {
    process.stderr.write('build: tsc found errors; no declarations\n');
    rmSync(types, { recursive: true, force: true });
    process.exit(1);
  }
  // The sources import with .ts extensions (run by tsx, checked with allowImportingTsExtensions);
  // in the declarations they are the .js paths every TypeScript setup resolves to the .d.ts.
  const rewrite = (dir) => {
    for (const name of readdirSync(dir)) {
      const file = join(dir, name);
      if (statSync(file).isDirectory()) rewrite(file);
      else if (name.endsWith('.d.ts')) {
        const text = readFileSync(file, 'utf8');
        const fixed = text.replace(/((?:from|import)\s*\(?\s*)(['"])(\.{1,2}\/[^'"]+)\.ts\2/g, '$1$2$3.js$2');
        if (fixed !== text) writeFileSync(file, fixed);
      }
    }
  };
  rewrite(types);
  process.stdout.write(`build: declarations in ${relative(root, types)}/\n`);
}
