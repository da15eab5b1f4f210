import { parseArgs } from 'node:util';
import { GenopsError } from '../errors/genops-error.js';
import type { RedisTarget } from '../limits/redis-connection.js';
import { parseRedisTarget, redactRedisUrl } from './redis-target.js';
import { loadTracingSettings, type TracingSettings } from './otel-settings.js';
import { loadTlsSettings, type TlsSettings } from './tls-settings.js';
import { loadTrustSettings, type TrustSettings } from './trust-settings.js';

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
const LOG_LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

export interface Settings {
  /** Policy YAML; undefined runs the embedded default policy. */
  readonly policyPath: string | undefined;
  readonly listenHost: string;
  readonly grpcPort: number;
  /** Also serve gRPC on this Unix domain socket (a sidecar Envoy's `pipe` address); undefined = TCP only. */
  readonly grpcSocket: string | undefined;
  readonly adminPort: number;
  /** Forward-auth HTTP endpoint (nginx auth_request, Traefik forwardAuth); 0 = off. */
  readonly forwardAuthPort: number;
  /** The header forward auth reads the original request target from (one the proxy sets, never one a client can forge). */
  readonly forwardAuthUriHeader: string;
  /** The header forward auth reads the original method from. */
  readonly forwardAuthMethodHeader: string;
  readonly redisUrl: string | undefined;
  /** GENOPS_REDIS_URL read: one node, or a Redis Cluster's seed nodes with TLS and credentials. */
  readonly redis: RedisTarget | undefined;
  /** Per-command Redis timeout: past it a limit follows its failure mode. */
  readonly redisTimeoutMs: number;
  /** Cap on in-memory rate-limit buckets. */
  readonly rateLimitMaxBuckets: number;
  readonly logLevel: LogLevel;
  /** How long SIGTERM waits for in-flight calls before closing them. */
  readonly drainTimeoutMs: number;
  /** Opt-in genops_customer_id metric label, capped at metricsCustomerLimit distinct values (the rest share one). */
  readonly metricsCustomerLabel: boolean;
  readonly metricsCustomerLimit: number;
  /** How long a capped label value must go unused before a new value may take its slot (bounded-label.ts). */
  readonly metricsLabelIdleMs: number;
  /** From the standard OTEL_* variables. */
  readonly tracing: TracingSettings;
  /** TLS (and mTLS) on the gRPC and forward-auth ports; undefined = plaintext. */
  readonly tls: TlsSettings | undefined;
  /** Added to the wall clock that rate limits and budget periods read (tests of a period rollover). */
  readonly clockOffsetMs: number;
  /** How long a budget hold lives without renewal (a crashed replica's holds go after this); renewed every third of it while its stream is open. */
  readonly budgetHoldTtlMs: number;
  /** Worker processes sharing the gRPC and forward-auth ports (1 = this process serves alone). */
  readonly workers: number;
  /** Payload-header trust per adapter, the /budgets token, the single-replica acknowledgement. */
  readonly trust: TrustSettings;
  /**
   * Observed metering across replicas (with Redis): the key (GENOPS_METERING_HANDOFF_SECRET,
   * environment only, ≥ 32 characters, the same on every replica) that seals the deciding
   * replica's handoff; undefined: the key the replicas keep in Redis (redis-shared-key.ts).
   */
  readonly meteringHandoffSecret: string | undefined;
  /** How long an exchange whose deciding stream ended waits for its metering stream before the fallback settles it. */
  readonly meteringGraceMs: number;
  /** Lifetime of a metering replica's claim on an exchange (extended while it meters; a dead replica's lapses after it). */
  readonly meteringClaimTtlMs: number;
}

/** Each flag and the environment variable it overrides. */
const SOURCES = {
  policy: 'GENOPS_POLICY',
  host: 'GENOPS_LISTEN_HOST',
  'grpc-port': 'GENOPS_GRPC_PORT',
  'grpc-socket': 'GENOPS_GRPC_SOCKET',
  'admin-port': 'GENOPS_ADMIN_PORT',
  'forward-auth-port': 'GENOPS_FORWARD_AUTH_PORT',
  'forward-auth-uri-header': 'GENOPS_FORWARD_AUTH_URI_HEADER',
  'forward-auth-method-header': 'GENOPS_FORWARD_AUTH_METHOD_HEADER',
  'redis-url': 'GENOPS_REDIS_URL',
  'redis-timeout': 'GENOPS_REDIS_TIMEOUT_MS',
  'rate-limit-max-buckets': 'GENOPS_RATE_LIMIT_MAX_BUCKETS',
  'log-level': 'LOG_LEVEL',
  'drain-timeout': 'GENOPS_DRAIN_TIMEOUT_MS',
  'metrics-customer-label': 'GENOPS_METRICS_CUSTOMER_LABEL',
  'metrics-customer-limit': 'GENOPS_METRICS_CUSTOMER_LIMIT',
  'metrics-label-idle': 'GENOPS_METRICS_LABEL_IDLE_MS',
  'tls-cert': 'GENOPS_TLS_CERT',
  'tls-key': 'GENOPS_TLS_KEY',
  'tls-client-ca': 'GENOPS_TLS_CLIENT_CA',
  'tls-client-allow': 'GENOPS_TLS_CLIENT_ALLOW',
  'tls-reload-interval': 'GENOPS_TLS_RELOAD_INTERVAL_MS',
  'clock-offset': 'GENOPS_CLOCK_OFFSET_MS',
  'budget-hold-ttl': 'GENOPS_BUDGET_HOLD_TTL_MS',
  workers: 'GENOPS_WORKERS',
  'trust-payload-header': 'GENOPS_TRUST_PAYLOAD_HEADER',
  'admin-token': 'GENOPS_ADMIN_TOKEN',
  'single-replica': 'GENOPS_SINGLE_REPLICA',
  'metering-grace': 'GENOPS_METERING_GRACE_MS',
  'metering-claim-ttl': 'GENOPS_METERING_CLAIM_TTL_MS',
} as const;
type Flag = keyof typeof SOURCES;

/**
 * Reads settings from flags, then environment variables, then defaults;
 * validated once and frozen. An error names the flag or variable at fault.
 */
export function loadSettings(argv: readonly string[], env: NodeJS.ProcessEnv): Settings {
  let flags: Partial<Record<Flag, string>>;
  try {
    const options = Object.fromEntries(Object.keys(SOURCES).map((flag) => [flag, { type: 'string' as const }]));
    flags = parseArgs({ args: [...argv], options, strict: true, allowPositionals: false }).values as Partial<Record<Flag, string>>;
  } catch (error) {
    throw new GenopsError('invalid_settings', `${(error as Error).message}; known flags: ${Object.keys(SOURCES).map((flag) => `--${flag}`).join(', ')}`, { cause: error });
  }
  const read = (flag: Flag): { value: string | undefined; name: string } => {
    if (flags[flag] !== undefined) return { value: flags[flag], name: `--${flag}` };
    const fromEnv = env[SOURCES[flag]];
    return { value: fromEnv === '' ? undefined : fromEnv, name: SOURCES[flag] };
  };

  const logLevel = read('log-level');
  const level = (logLevel.value ?? 'info').toLowerCase();
  if (!LOG_LEVELS.includes(level as LogLevel)) {
    throw new GenopsError('invalid_settings', `${logLevel.name}=${logLevel.value}: must be one of ${LOG_LEVELS.join(', ')}`);
  }
  const redis = read('redis-url');
  let redisTarget: RedisTarget | undefined;
  if (redis.value !== undefined) {
    try {
      redisTarget = parseRedisTarget(redis.value);
    } catch (error) {
      throw new GenopsError('invalid_settings', `${redis.name}=${redactRedisUrl(redis.value)}: ${(error as Error).message}`);
    }
  }

  // GENOPS_REDIS_PASSWORD goes into the URL (either form) once the URL itself is known to be valid.
  const redisUrl = withRedisPassword(redis, env.GENOPS_REDIS_PASSWORD);
  if (redisUrl !== undefined && redisUrl !== redis.value) redisTarget = parseRedisTarget(redisUrl);

  const workers = read('workers');
  const workerCount = integer(workers, 1, 1, 64);
  if (workerCount > 1 && redis.value === undefined) {
    throw new GenopsError('invalid_settings', `${workers.name}=${workerCount} needs GENOPS_REDIS_URL: in memory each worker would enforce its own rate limits and budgets (${workerCount} x each); set GENOPS_REDIS_URL or run one worker`);
  }

  return Object.freeze({
    policyPath: read('policy').value,
    listenHost: read('host').value ?? '0.0.0.0',
    grpcPort: port(read('grpc-port'), 9001),
    grpcSocket: read('grpc-socket').value,
    adminPort: port(read('admin-port'), 9464),
    forwardAuthPort: port(read('forward-auth-port'), 0),
    forwardAuthUriHeader: headerName(read('forward-auth-uri-header'), 'x-original-uri'),
    forwardAuthMethodHeader: headerName(read('forward-auth-method-header'), 'x-original-method'),
    redisUrl,
    redis: redisTarget,
    redisTimeoutMs: integer(read('redis-timeout'), 50, 1, 60_000),
    rateLimitMaxBuckets: integer(read('rate-limit-max-buckets'), 1_000_000, 1, 100_000_000),
    logLevel: level as LogLevel,
    drainTimeoutMs: integer(read('drain-timeout'), 10_000, 0, 600_000),
    metricsCustomerLabel: boolean(read('metrics-customer-label'), false),
    metricsCustomerLimit: integer(read('metrics-customer-limit'), 100, 1, 10_000),
    metricsLabelIdleMs: integer(read('metrics-label-idle'), 300_000, 1_000, 86_400_000),
    tracing: loadTracingSettings(env),
    tls: loadTlsSettings(read),
    clockOffsetMs: integer(read('clock-offset'), 0, -366 * 86_400_000, 366 * 86_400_000),
    budgetHoldTtlMs: integer(read('budget-hold-ttl'), 15 * 60_000, 3_000, 86_400_000),
    workers: workerCount,
    trust: loadTrustSettings(read),
    meteringHandoffSecret: handoffSecret(env.GENOPS_METERING_HANDOFF_SECRET),
    meteringGraceMs: integer(read('metering-grace'), 10_000, 100, 600_000),
    meteringClaimTtlMs: integer(read('metering-claim-ttl'), 10_000, 1_000, 600_000),
  });
}

function handoffSecret(value: string | undefined): string | undefined {
  if (value === undefined || value === '') return undefined;
  if (value.length < 32) throw new GenopsError('invalid_settings', 'GENOPS_METERING_HANDOFF_SECRET: must be at least 32 characters (e.g. openssl rand -hex 32), the same on every replica');
  return value;
}

function boolean(source: { value: string | undefined; name: string }, fallback: boolean): boolean {
  if (source.value === undefined) return fallback;
  const value = source.value.trim().toLowerCase();
  if (value !== 'true' && value !== 'false') throw new GenopsError('invalid_settings', `${source.name}=${source.value}: must be true or false`);
  return value === 'true';
}

function headerName(source: { value: string | undefined; name: string }, fallback: string): string {
  if (source.value === undefined) return fallback;
  const value = source.value.trim().toLowerCase();
  if (!/^[a-z0-9!#$%&'*+.^_`|~-]+$/.test(value)) throw new GenopsError('invalid_settings', `${source.name}=${source.value}: must be an HTTP header name`);
  return value;
}

function port(source: { value: string | undefined; name: string }, fallback: number): number {
  return integer(source, fallback, 0, 65_535);
}

function integer(source: { value: string | undefined; name: string }, fallback: number, min: number, max: number): number {
  if (source.value === undefined) return fallback;
  const value = Number(source.value);
  if (!(min < 0 ? /^-?\d+$/ : /^\d+$/).test(source.value.trim()) || value < min || value > max) {
    throw new GenopsError('invalid_settings', `${source.name}=${source.value}: must be an integer from ${min} to ${max}`);
  }
  return value;
}

/**
 * GENOPS_REDIS_PASSWORD (environment only: a flag would show in `ps`), written into the URL's
 * user-info percent-encoded, so a Kubernetes Secret can hold the password alone and the URL
 * stays a plain value. A URL that already carries a password and this setting is ambiguous.
 */
function withRedisPassword(redis: { value: string | undefined; name: string }, password: string | undefined): string | undefined {
  if (password === undefined || password === '') return redis.value;
  if (redis.value === undefined) throw new GenopsError('invalid_settings', 'GENOPS_REDIS_PASSWORD is set but GENOPS_REDIS_URL is not: set the URL of the Redis it opens');
  if (password.length > 512 || /[\u0000-\u001f\u007f]/.test(password)) throw new GenopsError('invalid_settings', 'GENOPS_REDIS_PASSWORD: must be 1 to 512 characters without control characters');
  const scheme = redis.value.indexOf('://') + 3;
  const authority = redis.value.slice(scheme).split(/[/?#]/, 1)[0]!;
  const userInfo = authority.includes('@') ? authority.slice(0, authority.lastIndexOf('@')) : undefined;
  if (userInfo !== undefined && userInfo.includes(':')) throw new GenopsError('invalid_settings', `${redis.name} already carries a password and GENOPS_REDIS_PASSWORD is set: use one of them`);
  const rest = userInfo === undefined ? redis.value.slice(scheme) : redis.value.slice(scheme + userInfo.length + 1);
  return `${redis.value.slice(0, scheme)}${userInfo ?? ''}:${encodeURIComponent(password)}@${rest}`;
}
