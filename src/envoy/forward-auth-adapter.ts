import { denialBody, isAllowed, type Decision } from '../governance/decision.js';
import type { HeaderLookup } from '../governance/governance-context.js';
import type { Governor } from '../governance/governor.js';
import { deploymentModel } from '../governance/ai-body.js';
import { classifyRequest } from '../governance/request-class.js';
import type { AiRoute } from '../usage/ai-api.js';
import type { CompiledPolicy } from '../policy/compiled-policy.js';
import type { DecisionReporter } from './decision-reporter.js';
import { clientHeaders, denialHeaders, headersToRemove, upstreamHeaders } from './governance-headers.js';

/**
 * HTTP forward authentication ("forward auth"): a proxy asks about a request
 * by sending its headers to one of these endpoints, and copies the governance
 * headers of a 2xx answer onto the request it forwards.
 *
 * | endpoint | caller | denials |
 * |---|---|---|
 * | `/forward-auth` | Traefik `forwardAuth`, anything that sends `X-Forwarded-Uri` | the real status (400, 403, 429, 503) |
 * | `/forward-auth/nginx` | nginx `auth_request`, ingress-nginx `auth-url` | always 403, real status in `x-genops-status` |
 * | `/forward-auth/envoy/<original path>` | Envoy's HTTP ext_authz with `path_prefix: /forward-auth/envoy` | the real status |
 */
export const FORWARD_AUTH_PATH = '/forward-auth';
export const NGINX_FORWARD_AUTH_PATH = '/forward-auth/nginx';
export const ENVOY_FORWARD_AUTH_PREFIX = '/forward-auth/envoy';

/**
 * nginx's auth_request only understands 2xx, 401 and 403 from the
 * subrequest (anything else becomes a 500), so the nginx endpoint answers
 * every denial with 403 and carries the real status and JSON body in these
 * headers for `auth_request_set` + `error_page 403` to replay.
 */
export const STATUS_HEADER = 'x-genops-status';
export const DENIAL_HEADER = 'x-genops-denial';
/** Envoy's HTTP ext_authz removes the request headers named here (a route the client forged). */
const ENVOY_HEADERS_TO_REMOVE = 'x-envoy-auth-headers-to-remove';

/** One forward-auth call, free of node:http. */
export interface ForwardAuthRequest {
  /** The request target of the auth call itself, e.g. `/forward-auth` or `/forward-auth/envoy/v1/chat`. */
  readonly target: string;
  /** The auth call's own method (Envoy's HTTP ext_authz sends the original one). */
  readonly method?: string | undefined;
  /** The auth call's headers (the original request's, plus the proxy's X-Forwarded-* / X-Original-*). */
  readonly headers: HeaderLookup;
}

export interface ForwardAuthResponse {
  readonly status: number;
  readonly headers: readonly [string, string][];
  readonly body: string;
}

export interface ForwardAuthAdapter {
  /** The answer, or undefined when `target` is none of the forward-auth endpoints (404). */
  check(request: ForwardAuthRequest): ForwardAuthResponse | Promise<ForwardAuthResponse> | undefined;
}

type Style = 'native' | 'nginx';

/**
 * Forward auth through the same governor as ext_authz and ext_proc: same
 * decisions, same upstream and client headers, same JSON denial bodies.
 */
export interface ForwardAuthAdapterOptions {
  readonly governor: Governor;
  readonly reporter: DecisionReporter;
  readonly now: () => number;
  readonly policy: () => CompiledPolicy;
  /**
   * The header carrying the original request target: one the proxy always sets, so a client
   * cannot choose the path that is checked (default x-original-uri, as the shipped nginx config
   * sets it; Traefik: x-forwarded-uri; ingress-nginx: x-original-url, a whole URL).
   */
  readonly uriHeader?: string | undefined;
  /** The header carrying the original method (default x-original-method; Traefik: x-forwarded-method). */
  readonly methodHeader?: string | undefined;
}

/** Methods whose requests carry no body worth reading; forward auth never sees a body, so the method is all it has. */
const BODYLESS_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS', 'DELETE', 'TRACE']);

export function createForwardAuthAdapter(options: ForwardAuthAdapterOptions): ForwardAuthAdapter {
  const { governor, reporter, now, policy } = options;
  const uriHeader = options.uriHeader ?? 'x-original-uri';
  const methodHeader = options.methodHeader ?? 'x-original-method';
  return {
    check(request) {
      const endpoint = endpointOf(request.target);
      if (!endpoint) return undefined;
      const startedAt = now();
      const original = endpoint.originalTarget ?? originalTargetFromHeader(request.headers, uriHeader);
      const malformed = original === undefined
        ? `the proxy sent no ${uriHeader} header: forward auth needs the original request target from it (GENOPS_FORWARD_AUTH_URI_HEADER names the header your proxy sets)`
        : !original.startsWith('/')
        ? `the original request target must be an origin-form path starting with "/", got ${JSON.stringify(original.slice(0, 64))}`
        : undefined;
      const method = (endpoint.originalTarget !== undefined ? request.method : request.headers(methodHeader)?.trim() || request.method)?.toUpperCase();
      const shape = malformed ? undefined : classifyRequest({ method, path: original, hasBody: method === undefined || !BODYLESS_METHODS.has(method) }, policy().usage);
      const decision = governor.evaluate({
        headers: request.headers,
        path: original,
        malformed,
        unknownAiApi: shape?.kind === 'unknown' ? shape.message : undefined,
        bodyUnseen: shape?.kind === 'ai' ? { api: shape.route.api, adapter: 'forward auth', model: pathModelOf(shape.route, policy()) } : undefined,
      });
      const respond = (settled: Decision) => {
        const response = toForwardAuthResponse(settled, endpoint.style);
        reporter.report('forward_auth', settled, startedAt, request.headers);
        return response;
      };
      return decision instanceof Promise ? decision.then(respond) : respond(decision);
    },
  };
}

/** The model a path names (Gemini, Bedrock; an Azure deployment's through the policy's map). */
function pathModelOf(route: AiRoute, policy: CompiledPolicy): string | undefined {
  if (route.pathModel === undefined || route.pathProblem !== undefined) return undefined;
  return route.deployment ? deploymentModel(route.pathModel, policy.usage) : route.pathModel;
}

function endpointOf(target: string): { style: Style; originalTarget?: string } | undefined {
  if (target === ENVOY_FORWARD_AUTH_PREFIX || target.startsWith(`${ENVOY_FORWARD_AUTH_PREFIX}/`) || target.startsWith(`${ENVOY_FORWARD_AUTH_PREFIX}?`)) {
    // Envoy prepends path_prefix to the original path, query string included.
    const rest = target.slice(ENVOY_FORWARD_AUTH_PREFIX.length);
    return { style: 'native', originalTarget: rest.startsWith('/') ? rest : `/${rest}` };
  }
  const path = target.split('?', 1)[0];
  if (path === FORWARD_AUTH_PATH) return { style: 'native' };
  if (path === NGINX_FORWARD_AUTH_PATH) return { style: 'nginx' };
  return undefined;
}

/**
 * The original request target, from the one header the settings name. Never a fallback to another
 * header: a client can send any header the proxy does not overwrite (X-Forwarded-Uri through nginx).
 */
function originalTargetFromHeader(headers: HeaderLookup, name: string): string | undefined {
  const value = headers(name)?.trim();
  if (value === undefined || value.length === 0) return undefined;
  if (!/^https?:\/\//i.test(value)) return value;
  try {
    // ingress-nginx's X-Original-URL is a whole URL.
    const parsed = new URL(value);
    return `${parsed.pathname}${parsed.search}`;
  } catch {
    return value;
  }
}

export function toForwardAuthResponse(decision: Decision, style: Style): ForwardAuthResponse {
  if (isAllowed(decision)) {
    const headers = mergeHeaders(upstreamHeaders(decision), clientHeaders(decision));
    const remove = headersToRemove(decision);
    if (remove.length > 0) headers.push([ENVOY_HEADERS_TO_REMOVE, remove.join(',')]);
    return { status: 200, headers, body: '' };
  }
  const body = denialBody(decision);
  const headers = denialHeaders(decision);
  if (style === 'native') return { status: decision.httpStatus, headers, body };
  return {
    status: 403,
    headers: [...headers, [STATUS_HEADER, String(decision.httpStatus)], [DENIAL_HEADER, asciiJson(body)]],
    body,
  };
}

/** Both lists carry x-genops-decision-id: send each header name once. */
function mergeHeaders(first: [string, string][], second: [string, string][]): [string, string][] {
  const seen = new Set(first.map(([name]) => name));
  return [...first, ...second.filter(([name]) => !seen.has(name))];
}

/** JSON that is safe as an HTTP header value: non-ASCII escaped as \uXXXX (JSON.stringify already escapes control characters). */
function asciiJson(json: string): string {
  return json.replace(/[\u007f-\uffff]/g, (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
