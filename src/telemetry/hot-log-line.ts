import pino, { type Logger } from 'pino';

/** Set by createLogger on the loggers whose lines a hot line may write (no mixin, hooks, redaction or nesting). */
export const HOT_LINE_SAFE = Symbol('genops.hotLineSafe');

type Level = 'info' | 'warn';
type Fields = Readonly<Record<string, string | number | boolean | null | undefined | readonly string[] | Readonly<Record<string, number>>>>;

interface PinoInternals {
  readonly [HOT_LINE_SAFE]?: boolean;
  [key: symbol]: unknown;
}

const { lsCacheSym, timeSym, chindingsSym, streamSym, endSym } = pino.symbols as unknown as Record<'lsCacheSym' | 'timeSym' | 'chindingsSym' | 'streamSym' | 'endSym', symbol>;

/**
 * A log method for a line written once per request: the same JSON line pino writes for
 * `logger[level](fields, message)` — level, time, the logger's bindings, the fields in order
 * (undefined ones left out), msg — with the fields serialized by one JSON.stringify instead of
 * pino's per-key loop (~5× less CPU for the ~25-field usage record, bench/RESULTS.md). Written
 * to the logger's own destination, so ordering and flushing are pino's. The fields must be
 * plain JSON values with no key that needs a serializer (`headers`, `err`); on a logger not made
 * by createLogger the line goes through pino itself.
 */
export function createHotLogLine(logger: Logger, level: Level, message: string): (fields: Fields) => void {
  const internals = logger as unknown as PinoInternals;
  if (internals[HOT_LINE_SAFE] !== true) return (fields) => logger[level](fields, message);
  const levelValue = logger.levels.values[level]!;
  const messagePart = `,"msg":${JSON.stringify(message)}`;
  return (fields) => {
    if (!logger.isLevelEnabled(level)) return;
    // Read per line: a child logger's bindings and the stream are fixed, but cheap to read.
    const prefix = (internals[lsCacheSym] as Record<number, string>)[levelValue]! + (internals[timeSym] as () => string)() + (internals[chindingsSym] as string);
    const body = JSON.stringify(fields);
    const line = prefix + (body.length > 2 ? `,${body.slice(1, -1)}` : '') + messagePart + (internals[endSym] as string);
    (internals[streamSym] as { write(line: string): void }).write(line);
  };
}
