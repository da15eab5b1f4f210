import pino, { type Logger, type LevelWithSilent } from 'pino';
import { HOT_LINE_SAFE } from './hot-log-line.js';
import { createIsoTime } from './iso-time.js';

export type { Logger };

export interface LoggerOptions {
  readonly level: LevelWithSilent;
  /** Write synchronously (tests, start-up failures); the service itself logs asynchronously. */
  readonly sync?: boolean;
  readonly destination?: number | string;
}

/** Header names whose values are credentials, in any casing. */
const SECRET_HEADER = /^(authorization|proxy-authorization|cookie|set-cookie|x-api-key|api-key|x-goog-api-key|x-amz-security-token|x-auth-token)$|(^|-)(token|secret|password|credential)s?($|-)/i;

/**
 * Masks credential headers in a `headers` object whatever their casing.
 * Decision logs never carry headers; this guards any line that ever does.
 */
export function redactHeaders(headers: unknown): unknown {
  if (headers === null || typeof headers !== 'object') return headers;
  const safe: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(headers as Record<string, unknown>)) {
    safe[name] = SECRET_HEADER.test(name) ? '[redacted]' : value;
  }
  return safe;
}

/**
 * JSON logs on stdout. Asynchronous by default so that a slow log sink never
 * holds up a decision; flushed on shutdown. Not buffered beyond one write in
 * flight: a line is out as soon as the previous write returns (bench/RESULTS.md:
 * batching 8 KB saved ~4 µs a line but delayed lines that operators and tests
 * read at once).
 */
export function createLogger(options: LoggerOptions): Logger {
  const destination = pino.destination({
    dest: options.destination ?? 1,
    sync: options.sync ?? false,
  });
  const logger = pino(
    {
      name: 'genops-mesh',
      level: options.level,
      timestamp: createIsoTime(),
      formatters: { level: (label) => ({ level: label }) },
      // A serializer runs only on lines that have the key: no cost elsewhere.
      serializers: { headers: redactHeaders },
    },
    destination,
  );
  // No mixin, hooks, redaction or nested key: createHotLogLine may write this logger's lines itself.
  Object.defineProperty(logger, HOT_LINE_SAFE, { value: true });
  return logger;
}
