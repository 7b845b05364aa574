#!/usr/bin/env node
// Entry point: load the TypeScript CLI through tsx's ESM loader, so no build step is needed.
import { register } from 'tsx/esm/api';
register();
await import('../src/cli/main.ts');
