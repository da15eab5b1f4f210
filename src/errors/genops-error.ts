/**
 * The one error class of the service. `code` is a closed set so that every
 * caller can map an error to a gRPC status, a log level and a metric label
 * without string matching.
 */
export type GenopsErrorCode =
  | 'invalid_settings'
  | 'invalid_policy'
  | 'malformed_request'
  | 'backend_unavailable'
  | 'internal';

export class GenopsError extends Error {
  readonly code: GenopsErrorCode;

  constructor(code: GenopsErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'GenopsError';
    this.code = code;
  }
}

export function isGenopsError(error: unknown, code?: GenopsErrorCode): error is GenopsError {
  return error instanceof GenopsError && (code === undefined || error.code === code);
}
