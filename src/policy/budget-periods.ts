/**
 * Budget periods: calendar days, weeks (from Monday) and months in an IANA time zone, or rolling
 * windows. Pure: the clock is an argument.
 */
export type CalendarUnit = 'daily' | 'weekly' | 'monthly';

export type BudgetPeriod =
  | { readonly kind: 'calendar'; readonly unit: CalendarUnit; readonly timeZone: string }
  | { readonly kind: 'rolling'; readonly windowMs: number; readonly slots: number };

export interface PeriodWindow {
  readonly startMs: number;
  /** When the period resets (calendar), or when the oldest spend in the window starts to drop out (rolling). */
  readonly endMs: number;
}

/** Rolling windows are counted in this many slots (24h → hourly). */
export const ROLLING_SLOTS = 24;

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatterFor(timeZone: string): Intl.DateTimeFormat {
  let formatter = formatters.get(timeZone);
  if (!formatter) {
    formatter = new Intl.DateTimeFormat('en-US', { timeZone, hourCycle: 'h23', year: 'numeric', month: 'numeric', day: 'numeric', hour: 'numeric', minute: 'numeric', second: 'numeric', weekday: 'short' });
    formatters.set(timeZone, formatter);
  }
  return formatter;
}

interface WallClock {
  readonly year: number;
  readonly month: number; // 1-12
  readonly day: number;
  readonly weekday: number; // 0 = Monday
  readonly hour: number;
  readonly minute: number;
  readonly second: number;
}

const WEEKDAYS = ['Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun'];

/**
 * UTC, the default time zone of a budget, is read from Date itself: the first Intl.DateTimeFormat
 * maps ICU's time-zone and locale data, ~6 MB of the node binary's pages and ~2 MB of heap that a
 * service with UTC budgets does not need.
 */
const UTC_NAMES = new Set(['utc', 'etc/utc']);

function wallClock(ms: number, timeZone: string): WallClock {
  if (UTC_NAMES.has(timeZone.toLowerCase())) {
    const date = new Date(ms);
    return { year: date.getUTCFullYear(), month: date.getUTCMonth() + 1, day: date.getUTCDate(), weekday: (date.getUTCDay() + 6) % 7, hour: date.getUTCHours(), minute: date.getUTCMinutes(), second: date.getUTCSeconds() };
  }
  const parts: Record<string, string> = {};
  for (const part of formatterFor(timeZone).formatToParts(ms)) parts[part.type] = part.value;
  return {
    year: Number(parts.year),
    month: Number(parts.month),
    day: Number(parts.day),
    weekday: WEEKDAYS.indexOf(parts.weekday ?? 'Mon'),
    hour: Number(parts.hour),
    minute: Number(parts.minute),
    second: Number(parts.second),
  };
}

/** The instant at which the wall clock of `timeZone` shows midnight of the given local date. */
function zonedMidnight(year: number, month: number, day: number, timeZone: string): number {
  const asUtc = Date.UTC(year, month - 1, day);
  let guess = asUtc;
  // Two passes settle the offset, DST changes included.
  for (let pass = 0; pass < 2; pass++) {
    const wall = wallClock(guess, timeZone);
    const wallAsUtc = Date.UTC(wall.year, wall.month - 1, wall.day, wall.hour, wall.minute, wall.second);
    guess = asUtc - (wallAsUtc - guess);
  }
  // Where midnight does not exist (a DST jump at 00:00, e.g. America/Santiago), the day starts at
  // the first instant its wall clock shows the date: step to the next whole hour until it does.
  for (let step = 0; step < 3; step++) {
    const wall = wallClock(guess, timeZone);
    if (Date.UTC(wall.year, wall.month - 1, wall.day) >= asUtc) break;
    guess += (60 - wall.minute) * 60_000 - wall.second * 1000;
  }
  return guess;
}

/**
 * The last calendar window computed per period: every reservation and settlement asks for the
 * window of now, and computing it takes up to a dozen Intl formatToParts calls (6 % of the
 * service's CPU on the AI exchange before this cache, bench/RESULTS.md, issue 18). A window holds
 * until its end, so the cached one answers every instant inside it.
 */
const lastWindows = new WeakMap<BudgetPeriod, PeriodWindow>();

/** The period that contains `nowMs`. */
export function periodWindow(period: BudgetPeriod, nowMs: number): PeriodWindow {
  if (period.kind === 'calendar') {
    const last = lastWindows.get(period);
    if (last && last.startMs <= nowMs && nowMs < last.endMs) return last;
    const window = calendarWindow(period, nowMs);
    lastWindows.set(period, window);
    return window;
  }
  const slotMs = period.windowMs / period.slots;
  const slotStart = Math.floor(nowMs / slotMs) * slotMs;
  return { startMs: slotStart - period.windowMs + slotMs, endMs: slotStart + slotMs };
}

function calendarWindow(period: Extract<BudgetPeriod, { kind: 'calendar' }>, nowMs: number): PeriodWindow {
  const { timeZone } = period;
  const now = wallClock(nowMs, timeZone);
  if (period.unit === 'daily') {
    const startMs = zonedMidnight(now.year, now.month, now.day, timeZone);
    const next = new Date(Date.UTC(now.year, now.month - 1, now.day + 1));
    return { startMs, endMs: zonedMidnight(next.getUTCFullYear(), next.getUTCMonth() + 1, next.getUTCDate(), timeZone) };
  }
  if (period.unit === 'weekly') {
    const monday = new Date(Date.UTC(now.year, now.month - 1, now.day - now.weekday));
    const nextMonday = new Date(Date.UTC(now.year, now.month - 1, now.day - now.weekday + 7));
    return {
      startMs: zonedMidnight(monday.getUTCFullYear(), monday.getUTCMonth() + 1, monday.getUTCDate(), timeZone),
      endMs: zonedMidnight(nextMonday.getUTCFullYear(), nextMonday.getUTCMonth() + 1, nextMonday.getUTCDate(), timeZone),
    };
  }
  const nextMonth = now.month === 12 ? { year: now.year + 1, month: 1 } : { year: now.year, month: now.month + 1 };
  return { startMs: zonedMidnight(now.year, now.month, 1, timeZone), endMs: zonedMidnight(nextMonth.year, nextMonth.month, 1, timeZone) };
}

/** "monthly (Europe/Berlin)" or "rolling 24h": how the period reads in headers, spans and the admin endpoint. */
export function describePeriod(period: BudgetPeriod, source: string): string {
  return period.kind === 'calendar' ? `${period.unit} (${period.timeZone})` : `rolling ${source}`;
}
