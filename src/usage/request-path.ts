/**
 * The ways one request path can be read. Envoy, the service and the upstream may each decode a
 * path differently (`/v1/chat%2Fcompletions`, `/V1/chat/completions`, `/v1/files/../chat/completions`,
 * `/v1/chat/completions;x`), so a path is classified on every reading an upstream might use, and the
 * strictest one wins: a path is an AI API when any reading is one, and headers-only only when
 * every reading is.
 */

/** Rounds of percent-decoding (`%252F` → `%2F` → `/`); an upstream that decodes more often is not a real server. */
const DECODE_ROUNDS = 3;
/** Unreserved characters (RFC 3986 §2.3), the escaped slashes and `%` itself: decoding these never changes which resource is meant to a normalizing server. */
const PLAIN_PATH = /^(?:\/[a-z0-9_-][a-z0-9_.~-]*)*\/?$/;
const DECODABLE = /%(2[dDeEfF5]|5[fFcC]|7[eE]|3[0-9]|[46][1-9a-fA-F]|[57][0-9aA])/g;

/**
 * The readings of a request target's path (query and fragment cut): as sent (repeated slashes
 * merged), normalized (escaped slashes and unreserved characters decoded, backslashes as slashes,
 * `;` parameters dropped from each segment, `.` and `..` resolved), and the normalized one
 * lowercased. Distinct values only, as sent first.
 */
export function pathReadings(target: string): readonly string[] {
  const cut = target.search(/[?#]/);
  const path = cut === -1 ? target : target.slice(0, cut);
  // Nearly every path: lowercase segments, no escapes, dot segments, parameters or repeated slashes: one reading.
  if (PLAIN_PATH.test(path)) return [path];
  const asSent = mergeSlashes(path);
  const normalized = normalizePath(path);
  const readings = [asSent];
  if (normalized !== asSent) readings.push(normalized);
  const lower = normalized.toLowerCase();
  if (!readings.includes(lower)) readings.push(lower);
  return readings;
}

export function normalizePath(path: string): string {
  let decoded = path;
  for (let round = 0; round < DECODE_ROUNDS && decoded.includes('%'); round++) {
    const next = decoded.replace(DECODABLE, (escape) => String.fromCharCode(Number.parseInt(escape.slice(1), 16)));
    if (next === decoded) break;
    decoded = next;
  }
  const segments: string[] = [];
  for (const raw of decoded.replace(/\\/g, '/').split('/')) {
    const parameters = raw.indexOf(';');
    const segment = parameters === -1 ? raw : raw.slice(0, parameters);
    if (segment === '' || segment === '.') continue;
    if (segment === '..') segments.pop();
    else segments.push(segment);
  }
  const trailing = decoded.endsWith('/') && segments.length > 0 ? '/' : '';
  return `/${segments.join('/')}${trailing}`;
}

function mergeSlashes(path: string): string {
  return path.replace(/\/{2,}/g, '/');
}

/** A headers-only prefix as compared: normalized, lowercased, no trailing slash ('' for '/': every path). */
export function compileHeadersOnly(entries: readonly { readonly prefix: string }[]): readonly string[] {
  return entries.map(({ prefix }) => normalizePath(prefix).toLowerCase().replace(/\/+$/, ''));
}

/** Whether a path (one reading) lies under a compiled prefix, on whole segments. */
export function isUnderPrefix(path: string, prefix: string): boolean {
  const lower = path.toLowerCase();
  return prefix === '' || lower === prefix || lower.startsWith(`${prefix}/`);
}
