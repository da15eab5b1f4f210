import pino, { type Logger, type LevelWithSilent } from 'pino';

export type { Logger };

export interface LoggerOptions {
  readonly level: LevelWithSilent;
  /** Write synchronously (tests, start-up failures); the service itself logs asynchronously. */
  readonly sync?: boolean;
  readonly destination?: number | string;
}

/**
 * JSON logs on stdout. Asynchronous by default so that a slow log sink never
 * holds up a decision; flushed on shutdown.
 */
export function createLogger(options: LoggerOptions): Logger {
  const destination = pino.destination({
    dest: options.destination ?? 1,
    sync: options.sync ?? false,
  });
  return pino(
    {
      name: 'genops-mesh',
      level: options.level,
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      redact: {
        paths: ['headers.authorization', 'headers.cookie', 'headers["x-api-key"]', 'headers["proxy-authorization"]'],
        censor: '[redacted]',
      },
    },
    destination,
  );
}
