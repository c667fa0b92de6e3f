/** CLI error reporting: one clear line and a non-zero exit; the stack only with --verbose. */
import { isInternVLError } from '../errors.js';

export function reportError(e: unknown, verbose: boolean): never {
  const err = e as Error;
  const code = isInternVLError(e) ? ` [${e.code}]` : '';
  const message = err?.message ?? String(e);
  process.stderr.write(`internvl: error${code}: ${verbose ? message : message.split('\n')[0]}\n`);
  if (verbose && err?.stack) process.stderr.write(`${err.stack}\n`);
  process.exit(isInternVLError(e) && e.code === 'ERR_INVALID_ARG' ? 2 : 1);
}
