#!/usr/bin/env node
// The `paxmon` command: TypeScript sources run through tsx's loader.
import { register } from 'tsx/esm/api';

register();
await import('./main.ts');
