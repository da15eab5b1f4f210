import type { CompiledUsage } from '../policy/compiled-policy.js';
import type { AiRoute } from '../usage/ai-api.js';
import { isUnderPrefix, pathReadings } from '../usage/request-path.js';

/**
 * Deny by default for AI traffic: what a request is, decided from its method, path and whether it
 * carries a body, before anything else is read.
 * - `ai`: a POST to an API shape the service reads: its body is read and it is governed fully.
 * - `headers`: no body, or under a `spec.usage.headersOnly` prefix: decided on headers (team, tier,
 *   rate limits; no model rules, no budgets).
 * - `unknown`: a body the service cannot read: refused (x_unknown_ai_api), so that no AI call
 *   passes ungoverned because its path was not recognised.
 */
export type RequestClass =
  | { readonly kind: 'ai'; readonly route: AiRoute }
  | { readonly kind: 'headers' }
  | { readonly kind: 'unknown'; readonly message: string };

export interface ClassifiedRequest {
  readonly method: string | undefined;
  /** The request target (path and query), as the proxy saw it. */
  readonly path: string | undefined;
  /** True when the request carries a body, or may (the proxy cannot tell). */
  readonly hasBody: boolean;
}

const HEADERS: RequestClass = Object.freeze({ kind: 'headers' });
const MAX_PATH_IN_MESSAGE = 200;

export function classifyRequest(request: ClassifiedRequest, usage: CompiledUsage): RequestClass {
  const { method, path, hasBody } = request;
  if (!hasBody && method !== 'POST') return HEADERS;
  const readings = path === undefined || path.length === 0 ? [] : pathReadings(path);
  if (method === 'POST') {
    // Any reading an upstream might use that is an AI API makes the request one: its body is then read.
    for (const reading of readings) {
      const route = usage.paths.route(reading);
      if (route) return { kind: 'ai', route };
    }
  }
  if (!hasBody) return HEADERS;
  if (readings.length > 0 && readings.every((reading) => usage.headersOnly.some((prefix) => isUnderPrefix(reading, prefix)))) return HEADERS;
  return { kind: 'unknown', message: unknownMessage(method, path) };
}

function unknownMessage(method: string | undefined, path: string | undefined): string {
  const shown = path === undefined ? '(no path)' : JSON.stringify(path.length > MAX_PATH_IN_MESSAGE ? `${path.slice(0, MAX_PATH_IN_MESSAGE)}…` : path);
  return `${method ?? 'a request'} ${shown} carries a body this service cannot read: it is not an AI API the service governs and not under spec.usage.headersOnly, so it is refused (deny by default)`;
}
