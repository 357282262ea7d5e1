#!/usr/bin/env node
// The built `paxmon` command (dist/paxmon.mjs, built from this file; cli/bin.js, the package's
// bin, runs it): a first step that runs before any other module of the command, then the command
// (main.ts, loaded with import() so that what is set here is set before any of it evaluates).
//
// A client command (quorum_status, config-key…) lives a fraction of a second and decodes a few
// small replies, so it does without msgpackr's native string extraction (msgpackr-extract, whose
// loading costs ~30 ms of CPU, a fifth of such a command): it is turned off for this process
// unless the command runs monitors (mon, up, start, restart; they spawn theirs without the
// setting) or the user set it either way. And Node 22+ keeps the compiled code between runs
// (module.enableCompileCache; Node 20 has no such cache).
import nodeModule from 'node:module';

const daemonWords = ['mon', 'up', 'start', 'restart'];
const words = process.argv.slice(2);
if (
  process.env.MSGPACKR_NATIVE_ACCELERATION_DISABLED === undefined &&
  !words.some((word) => daemonWords.includes(word))
)
  process.env.MSGPACKR_NATIVE_ACCELERATION_DISABLED = 'true';
(nodeModule as { enableCompileCache?: () => unknown }).enableCompileCache?.();

const { main } = await import('./main.ts');
await main(process.argv);
