export const DURATION_PATTERN = /^[1-9][0-9]*(ms|s|m|h|d)$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Parses "250ms", "60s", "1m", "1h", "1d" into milliseconds; undefined when malformed. */
export function parseDurationMs(text: string): number | undefined {
  const match = DURATION_PATTERN.exec(text);
  if (!match) return undefined;
  const unit = match[1]!;
  return Number(text.slice(0, text.length - unit.length)) * UNIT_MS[unit]!;
}
