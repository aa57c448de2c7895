#!/usr/bin/env node
// The `capsule` executable (package.json "bin"). The CLI itself is in program.ts.
import { main } from './program.js';

await main();
