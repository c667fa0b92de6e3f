/**
 * Loads the native addon once. A failure names every path tried and the likely
 * cause (not built, built for another platform, missing CUDA libraries), with the
 * one command that fixes it, the way sharp and node-llama-cpp explain theirs.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { InternVLError, fromNative } from './errors.js';
import type { NativeAddon, NativeInfo } from './nativeTypes.js';

const require = createRequire(import.meta.url);

/** The package root: lib/ (sources) and dist/ (compiled) both sit one level below it. */
export const packageRoot = join(dirname(fileURLToPath(import.meta.url)), '..');

let addon: NativeAddon | undefined;

function explainLoadFailure(e: unknown, root: string): InternVLError {
  const msg = e instanceof Error ? e.message : String(e);
  const lines = [`Could not load the internvl native addon (${process.platform}-${process.arch}, Node ${process.version}).`];
  const built = ['build/Release/internvl.node', 'build/Debug/internvl.node'].some((p) => existsSync(join(root, p)));
  if (!built) {
    lines.push(
      'The addon has not been built. npm may have skipped the install script (npm 11 blocks dependency scripts by default).',
      'Build it with:  npx internvl build   (or: npm run build:native in the package directory)',
    );
  } else if (/libcu(blas|blasLt|dart)|libcuda/.test(msg)) {
    lines.push(
      'The addon was built with the CUDA backend but a CUDA library is missing at run time.',
      'Install the CUDA runtime/driver, or rebuild CPU-only with:  npx internvl build --cuda OFF',
    );
  } else if (/invalid ELF header|wrong ELF class|mach-o|not a valid Win32/i.test(msg)) {
    lines.push('The addon was built for another platform or architecture. Rebuild it here with:  npx internvl build');
  }
  lines.push(`Cause: ${msg}`);
  return new InternVLError('ERR_NATIVE_LOAD', lines.join('\n'), { cause: e });
}

/** Loads the addon of the package rooted at `root` (bindings' search: build/Release, build/Debug, ...). */
export function loadNativeFrom(root: string): NativeAddon {
  try {
    const bindings = require('bindings') as (opts: { bindings: string; module_root: string }) => NativeAddon;
    return bindings({ bindings: 'internvl', module_root: root });
  } catch (e) {
    throw explainLoadFailure(e, root);
  }
}

/** The addon, loaded on first use. Throws InternVLError('ERR_NATIVE_LOAD') with an explanation. */
export function loadNative(): NativeAddon {
  addon ??= loadNativeFrom(packageRoot);
  return addon;
}

/**
 * Calls a native function, rewrapping its errors (sync throw or rejection) as
 * InternVLError with the caller's stack rather than the addon's.
 */
export async function callNative<T>(fn: (a: NativeAddon) => Promise<T> | T): Promise<T> {
  const callerStack = new Error().stack;
  const a = loadNative();
  try {
    return await fn(a);
  } catch (e) {
    throw fromNative(e, callerStack);
  }
}

/** Synchronous variant of {@link callNative}. */
export function callNativeSync<T>(fn: (a: NativeAddon) => T): T {
  const a = loadNative();
  try {
    return fn(a);
  } catch (e) {
    throw fromNative(e, new Error().stack);
  }
}

/** What this build can run on: backends, CUDA devices with free/total memory. */
export function runtimeInfo(): NativeInfo {
  return callNativeSync((a) => a.info());
}
