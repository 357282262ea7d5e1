#!/usr/bin/env node
// The `paxmon` command: TypeScript sources run through tsx's loader. It is reached through
// symlinks (node_modules/.bin/paxmon, npx), so it calls main() itself rather than relying on
// main.ts recognising its own path.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('./main.ts');
await main(process.argv);
