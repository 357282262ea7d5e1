#!/usr/bin/env node
// The `paxmon` command as npm links it (package.json "bin"; node_modules/.bin/paxmon, npx): the
// built JavaScript, dist/paxmon.mjs (cli/paxmon.ts and what it loads; `npm run build`, which npm
// install, npm start, npm test and npm pack run). A path of its own, the one the bin has always
// had, so that links made by an earlier install or npx run stay valid whatever the build's layout.
try {
  await import('../dist/paxmon.mjs');
} catch (error) {
  if (error?.code === 'ERR_MODULE_NOT_FOUND' && String(error.message).includes('dist/paxmon.mjs')) {
    process.stderr.write('Error ENOENT: paxmon is not built (dist/paxmon.mjs): run npm run build\n');
    process.exit(2);
  }
  throw error;
}
