/**
 * Every failure the runtime reports is an {@link InternVLError} with a stable `code`,
 * so callers can branch on `err.code` rather than on message text.
 */
export const ERROR_CODES = [
  'ERR_CONFIG',
  'ERR_CHECKPOINT',
  'ERR_IMAGE',
  'ERR_CONTEXT_OVERFLOW',
  'ERR_INVALID_ARG',
  'ERR_OOM',
  'ERR_CUDA',
  'ERR_ABORTED',
  'ERR_DISPOSED',
  'ERR_TOKENIZER',
  'ERR_NATIVE_LOAD',
  'ERR_INTERNAL',
  // Hub downloads (lib/hub): repo/revision/file missing, auth or gating, offline cache miss,
  // network failure after retries, a download that fails its size/checksum, not enough disk.
  'ERR_HUB_NOT_FOUND',
  'ERR_HUB_AUTH',
  'ERR_HUB_OFFLINE',
  'ERR_HUB_NETWORK',
  'ERR_DOWNLOAD_INTEGRITY',
  'ERR_DISK_SPACE',
] as const;

/** The stable error codes of {@link InternVLError} (docs/TROUBLESHOOTING.md explains each). */
export type InternVLErrorCode = (typeof ERROR_CODES)[number];

/** The one error type the runtime throws; branch on its stable `code`. */
export class InternVLError extends Error {
  /** Stable across releases; see docs/TROUBLESHOOTING.md. */
  readonly code: InternVLErrorCode;

  constructor(code: InternVLErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'InternVLError';
    this.code = code;
  }
}

/** Whether `e` is an {@link InternVLError} (also across realms, where instanceof fails). */
export function isInternVLError(e: unknown): e is InternVLError {
  return e instanceof InternVLError;
}

function isErrorCode(code: unknown): code is InternVLErrorCode {
  return typeof code === 'string' && (ERROR_CODES as readonly string[]).includes(code);
}

/**
 * Rewraps an error thrown by the addon (a plain Error with a `code`) as an
 * InternVLError whose stack is the JS caller's: `callerStack` is captured before
 * the async hop, so the trace points at user code, not at the promise machinery.
 */
export function fromNative(e: unknown, callerStack?: string): InternVLError {
  if (e instanceof InternVLError) return e;
  const err = e as { code?: unknown; message?: unknown };
  const code = isErrorCode(err?.code) ? err.code : 'ERR_INTERNAL';
  const message = typeof err?.message === 'string' ? err.message : String(e);
  const out = new InternVLError(code, message, { cause: e });
  if (callerStack) {
    const frames = callerStack.split('\n').slice(1).join('\n');
    out.stack = `InternVLError: ${message}\n${frames}`;
  }
  return out;
}

/** Sharp-style option errors: name the option, the expectation and what arrived. */
export function invalidArg(name: string, expected: string, received: unknown): InternVLError {
  const shown =
    typeof received === 'string'
      ? JSON.stringify(received)
      : Array.isArray(received)
        ? 'an array'
        : ArrayBuffer.isView(received)
          ? `a ${received.constructor.name} of ${received.byteLength} bytes`
          : String(received);
  const type = received === null ? 'null' : Array.isArray(received) ? 'array' : typeof received;
  return new InternVLError('ERR_INVALID_ARG', `Expected ${expected} for ${name} but received ${shown} of type ${type}`);
}
