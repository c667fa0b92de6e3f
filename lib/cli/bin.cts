#!/usr/bin/env node
/**
 * The `internvl` command's entry (package.json "bin"). CommonJS, loaded by Node's synchronous
 * CJS loader, so UV_THREADPOOL_SIZE is set before the pool exists: the same line as the first
 * statement of the ESM main.js would come too late, the ESM loader having started the pool
 * with 4 threads to read main.js itself (Node 20).
 */
import { applyUvThreadpoolSize } from './threadpool.cjs';

applyUvThreadpoolSize();
void import('./main.js');
