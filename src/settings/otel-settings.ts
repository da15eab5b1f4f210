import { GenopsError } from '../errors/genops-error.js';

/** The OTEL_TRACES_SAMPLER values of the OpenTelemetry SDK environment specification. */
export const TRACES_SAMPLERS = [
  'always_on',
  'always_off',
  'traceidratio',
  'parentbased_always_on',
  'parentbased_always_off',
  'parentbased_traceidratio',
] as const;
export type TracesSampler = (typeof TRACES_SAMPLERS)[number];

/** Where spans go when neither OTEL_EXPORTER_OTLP_TRACES_ENDPOINT nor OTEL_EXPORTER_OTLP_ENDPOINT is set (the OTLP/gRPC default). */
export const DEFAULT_OTLP_ENDPOINT = 'http://localhost:4317';

export interface TracingSettings {
  /** False with OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none: no tracer is built at all. */
  readonly enabled: boolean;
  /** OTLP/gRPC collector URL. */
  readonly endpoint: string;
  readonly sampler: TracesSampler;
  /** Ratio for the traceidratio samplers, 0 to 1. */
  readonly samplerArg: number;
  /** Batch span processor: OTEL_BSP_SCHEDULE_DELAY, OTEL_BSP_EXPORT_TIMEOUT, OTEL_BSP_MAX_QUEUE_SIZE, OTEL_BSP_MAX_EXPORT_BATCH_SIZE. */
  readonly scheduledDelayMillis: number;
  readonly exportTimeoutMillis: number;
  readonly maxQueueSize: number;
  readonly maxExportBatchSize: number;
}

const DISABLED: TracingSettings = Object.freeze({
  enabled: false,
  endpoint: DEFAULT_OTLP_ENDPOINT,
  sampler: 'parentbased_always_on',
  samplerArg: 1,
  scheduledDelayMillis: 5_000,
  exportTimeoutMillis: 30_000,
  maxQueueSize: 2048,
  maxExportBatchSize: 512,
});

/**
 * Reads the standard OTEL_* variables the service honours. Stricter than the
 * OpenTelemetry SDKs, which ignore a bad value with a warning: a typo in a
 * sampler name or a number stops the start-up with one line naming the
 * variable, like every other setting. OTEL_SERVICE_NAME and
 * OTEL_RESOURCE_ATTRIBUTES are read by the resource detector; the exporter
 * itself reads OTEL_EXPORTER_OTLP_HEADERS, _TIMEOUT, _COMPRESSION and the TLS
 * variables.
 */
export function loadTracingSettings(env: NodeJS.ProcessEnv): TracingSettings {
  const read = (name: string): string | undefined => {
    const value = env[name]?.trim();
    return value === '' ? undefined : value;
  };
  const disabled = read('OTEL_SDK_DISABLED')?.toLowerCase() === 'true';
  const exporter = (read('OTEL_TRACES_EXPORTER') ?? 'otlp').toLowerCase();
  if (exporter !== 'otlp' && exporter !== 'none') {
    throw new GenopsError('invalid_settings', `OTEL_TRACES_EXPORTER=${exporter}: must be otlp or none`);
  }

  // Disabled tracing reads nothing else: stale OTEL_* values cannot stop the start-up.
  if (disabled || exporter === 'none') return DISABLED;

  const endpointName = read('OTEL_EXPORTER_OTLP_TRACES_ENDPOINT') !== undefined ? 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT' : 'OTEL_EXPORTER_OTLP_ENDPOINT';
  const endpoint = read(endpointName) ?? DEFAULT_OTLP_ENDPOINT;
  try {
    // Like the exporter: a bare host:port means https.
    const url = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(endpoint) ? endpoint : `https://${endpoint}`);
    if (!['http:', 'https:', 'unix:'].includes(url.protocol)) throw new Error(`unsupported scheme ${url.protocol}`);
  } catch (error) {
    throw new GenopsError('invalid_settings', `${endpointName}=${endpoint}: must be an http:// or https:// URL of an OTLP/gRPC collector`, { cause: error });
  }

  const samplerValue = (read('OTEL_TRACES_SAMPLER') ?? 'parentbased_always_on').toLowerCase();
  if (!(TRACES_SAMPLERS as readonly string[]).includes(samplerValue)) {
    throw new GenopsError('invalid_settings', `OTEL_TRACES_SAMPLER=${samplerValue}: must be one of ${TRACES_SAMPLERS.join(', ')}`);
  }
  const ratio = read('OTEL_TRACES_SAMPLER_ARG');
  let samplerArg = 1;
  if (ratio !== undefined && samplerValue.endsWith('traceidratio')) {
    samplerArg = Number(ratio);
    if (!Number.isFinite(samplerArg) || samplerArg < 0 || samplerArg > 1) {
      throw new GenopsError('invalid_settings', `OTEL_TRACES_SAMPLER_ARG=${ratio}: must be a number from 0 to 1`);
    }
  }

  const integer = (name: string, fallback: number, min: number, max: number): number => {
    const raw = read(name);
    if (raw === undefined) return fallback;
    const value = Number(raw);
    if (!/^\d+$/.test(raw) || value < min || value > max) {
      throw new GenopsError('invalid_settings', `${name}=${raw}: must be an integer from ${min} to ${max}`);
    }
    return value;
  };
  const maxQueueSize = integer('OTEL_BSP_MAX_QUEUE_SIZE', 2048, 1, 1_000_000);
  return Object.freeze({
    enabled: true,
    endpoint,
    sampler: samplerValue as TracesSampler,
    samplerArg,
    scheduledDelayMillis: integer('OTEL_BSP_SCHEDULE_DELAY', 5_000, 0, 3_600_000),
    exportTimeoutMillis: integer('OTEL_BSP_EXPORT_TIMEOUT', 30_000, 1, 3_600_000),
    maxQueueSize,
    maxExportBatchSize: Math.min(integer('OTEL_BSP_MAX_EXPORT_BATCH_SIZE', 512, 1, 1_000_000), maxQueueSize),
  });
}
