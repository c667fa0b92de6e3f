/** OpenAI-style error bodies: `{ error: { message, type, param, code } }` with a fitting status. */
import { isInternVLError } from '../errors.js';

export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly type = 'invalid_request_error',
    readonly param: string | null = null,
    readonly code: string | null = null,
  ) {
    super(message);
  }
}

const STATUS_BY_CODE: Record<string, number> = {
  ERR_INVALID_ARG: 400,
  ERR_IMAGE: 400,
  ERR_CONTEXT_OVERFLOW: 400,
  ERR_ABORTED: 499,
  ERR_OOM: 503,
  ERR_DISPOSED: 503,
};

export function toHttpError(e: unknown): HttpError {
  if (e instanceof HttpError) return e;
  if (isInternVLError(e)) {
    const status = STATUS_BY_CODE[e.code] ?? 500;
    return new HttpError(status, e.message, status < 500 ? 'invalid_request_error' : 'server_error', null, e.code);
  }
  return new HttpError(500, 'internal server error', 'server_error');
}

export function errorBody(e: HttpError): string {
  return JSON.stringify({ error: { message: e.message, type: e.type, param: e.param, code: e.code } });
}
