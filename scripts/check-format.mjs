#!/usr/bin/env node
// The checks that prettier and eslint do not cover: generated files are fresh.
import { execFileSync } from 'node:child_process';
execFileSync(process.execPath, [new URL('./gen-steps.mjs', import.meta.url).pathname, '--check'], {
  stdio: 'inherit',
});
