import { readFileSync } from 'node:fs';
import { TraceFlags, type Context, type Tracer } from '@opentelemetry/api';
import { ExportResultCode, TraceState, type ExportResult } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import { defaultResource, detectResources, resourceAttributesEnvDetector, resourceFromAttributes, serviceNameEnvDetector, type Resource } from '@opentelemetry/resources';
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  BatchSpanProcessor,
  ParentBasedSampler,
  TraceIdRatioBasedSampler,
  TracerProvider,
  type ReadableSpan,
  type Sampler,
  type Span,
  type SpanExporter,
  type SpanProcessor,
} from '@opentelemetry/sdk-trace';
import { ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION } from '@opentelemetry/semantic-conventions';
import type { Logger } from './logger.js';
import type { Metrics, SpanDropReason } from './metrics.js';
import { TRACER_NAME } from './span-conventions.js';
import { setTraceStateParser } from './trace-context.js';

export type TracesSamplerName = 'always_on' | 'always_off' | 'traceidratio' | 'parentbased_always_on' | 'parentbased_always_off' | 'parentbased_traceidratio';

export interface TracingOptions {
  /** OTLP/gRPC collector URL, e.g. http://otel-collector:4317. */
  readonly endpoint: string;
  readonly sampler: TracesSamplerName;
  readonly samplerArg: number;
  readonly scheduledDelayMillis: number;
  readonly exportTimeoutMillis: number;
  /** Spans past this many waiting for export are dropped (and counted), never buffered without bound. */
  readonly maxQueueSize: number;
  readonly maxExportBatchSize: number;
  readonly metrics: Metrics;
  readonly logger: Logger;
  /** At most one warning per this interval while exports fail. Default 60 s. */
  readonly failureLogIntervalMs?: number;
  /** Replaces the OTLP exporter (tests). */
  readonly exporter?: SpanExporter;
}

export interface Tracing {
  readonly tracer: Tracer;
  /** deployment.environment.name (or deployment.environment) from OTEL_RESOURCE_ATTRIBUTES, if set. */
  readonly deploymentEnvironment: string | undefined;
  forceFlush(): Promise<void>;
  /** Exports what is queued, waiting at most `timeoutMs`; never throws. */
  shutdown(timeoutMs: number): Promise<void>;
}

const DEFAULT_SERVICE_NAME = 'genops-mesh';

/**
 * The tracer behind the decision spans: a TracerProvider with one bounded
 * BatchSpanProcessor in front of the OTLP/gRPC exporter. Nothing on the
 * decision path waits for the exporter: ending a span only queues it. A full
 * queue drops the span and an export the collector did not accept drops its
 * batch; both are counted in genops_spans_dropped_total, and a failing
 * collector is logged at most once a minute, never per span.
 */
export function createTracing(options: TracingOptions): Tracing {
  const { metrics, logger } = options;
  // Span parents carry the SDK's own reading of `tracestate` (trace-context.ts).
  setTraceStateParser((raw) => new TraceState(raw));
  const resource = buildResource();
  const failureLogIntervalMs = options.failureLogIntervalMs ?? 60_000;
  let lastFailureLog = -Infinity;
  let droppedSinceLog = 0;

  const exporter = new CountingExporter(options.exporter ?? new OTLPTraceExporter({ url: options.endpoint }), {
    exported: (count) => metrics.spansExported.inc(count),
    failed: (count, error) => {
      metrics.spansDropped.inc({ reason: 'export_failed' }, count);
      metrics.backendErrors.inc({ backend: 'otlp', kind: 'export' });
      droppedSinceLog += count;
      const now = Date.now();
      if (now - lastFailureLog < failureLogIntervalMs) return;
      lastFailureLog = now;
      logger.warn(
        { event: 'span_export_failed', endpoint: options.endpoint, err: error?.message ?? 'export failed', spans_dropped: droppedSinceLog },
        'exporting decision spans failed; they are dropped and counted in genops_spans_dropped_total',
      );
      droppedSinceLog = 0;
    },
  });
  const batch = new BatchSpanProcessor({
    exporter,
    maxQueueSize: options.maxQueueSize,
    maxExportBatchSize: Math.min(options.maxExportBatchSize, options.maxQueueSize),
    scheduledDelayMillis: options.scheduledDelayMillis,
    exportTimeoutMillis: options.exportTimeoutMillis,
  });
  const bounded = new BoundedQueueProcessor(batch, options.maxQueueSize, (reason, count) => metrics.spansDropped.inc({ reason }, count));
  exporter.onHandOver = (count) => bounded.released(count);

  const provider = new TracerProvider({ resource, sampler: samplerOf(options.sampler, options.samplerArg), spanProcessors: [bounded] });
  const environment = resource.attributes['deployment.environment.name'] ?? resource.attributes['deployment.environment'];
  return {
    tracer: provider.getTracer(TRACER_NAME, serviceVersion()),
    deploymentEnvironment: typeof environment === 'string' && environment !== '' ? environment : undefined,
    forceFlush: () => provider.forceFlush(),
    async shutdown(timeoutMs) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        provider.shutdown().catch(() => undefined),
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, timeoutMs);
          timer.unref();
        }),
      ]);
      clearTimeout(timer);
    },
  };
}

function samplerOf(name: TracesSamplerName, ratio: number): Sampler {
  switch (name) {
    case 'always_on':
      return new AlwaysOnSampler();
    case 'always_off':
      return new AlwaysOffSampler();
    case 'traceidratio':
      return new TraceIdRatioBasedSampler(ratio);
    case 'parentbased_always_on':
      return new ParentBasedSampler({ root: new AlwaysOnSampler() });
    case 'parentbased_always_off':
      return new ParentBasedSampler({ root: new AlwaysOffSampler() });
    case 'parentbased_traceidratio':
      return new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(ratio) });
  }
}

/** SDK defaults, then service.name genops-mesh and its version, then OTEL_RESOURCE_ATTRIBUTES, then OTEL_SERVICE_NAME. */
function buildResource(): Resource {
  const version = serviceVersion();
  return defaultResource()
    .merge(resourceFromAttributes({ [ATTR_SERVICE_NAME]: DEFAULT_SERVICE_NAME, ...(version ? { [ATTR_SERVICE_VERSION]: version } : {}) }))
    .merge(detectResources({ detectors: [resourceAttributesEnvDetector, serviceNameEnvDetector] }));
}

let version: string | undefined | null = null;
function serviceVersion(): string | undefined {
  if (version !== null) return version;
  try {
    // package.json sits two levels above both src/telemetry and dist/telemetry.
    version = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: string }).version;
  } catch {
    version = undefined;
  }
  return version;
}

/**
 * Counts what happens to each batch: accepted by the collector, or dropped
 * because the export failed (collector down, slow past the timeout, refused).
 */
class CountingExporter implements SpanExporter {
  /** Spans leave the processor's queue when they are handed to the exporter. */
  onHandOver: (count: number) => void = () => undefined;

  constructor(
    private readonly inner: SpanExporter,
    private readonly hooks: { exported(count: number): void; failed(count: number, error: Error | undefined): void },
  ) {}

  export(spans: ReadableSpan[], resultCallback: (result: ExportResult) => void): void {
    const count = spans.length;
    this.onHandOver(count);
    let settled = false;
    const settle = (result: ExportResult) => {
      if (settled) return;
      settled = true;
      if (result.code === ExportResultCode.SUCCESS) this.hooks.exported(count);
      else this.hooks.failed(count, result.error);
      resultCallback(result);
    };
    try {
      this.inner.export(spans, settle);
    } catch (error) {
      settle({ code: ExportResultCode.FAILED, error: error instanceof Error ? error : new Error(String(error)) });
    }
  }

  shutdown(): Promise<void> {
    return this.inner.shutdown();
  }

  forceFlush(): Promise<void> {
    return this.inner.forceFlush?.() ?? Promise.resolve();
  }
}

/**
 * Keeps the count of sampled spans waiting in the batch processor's queue
 * and drops (and counts) a span that would overflow it, so the queue bound
 * is enforced where it can be observed. The batch processor applies the same
 * bound, so it never drops on its own.
 *
 * Ended spans reach the batch processor in one hand-over per event-loop
 * turn (setImmediate), not from span.end(): the batch processor exports —
 * serializes the whole batch — synchronously inside the onEnd() that fills
 * it, which put a 512-span serialization on one unlucky decision's path
 * before its reply was written (bench/RESULTS.md, tracing).
 */
class BoundedQueueProcessor implements SpanProcessor {
  private queued = 0;
  private pending: ReadableSpan[] = [];
  private handOverScheduled = false;
  private readonly handOver = () => {
    this.handOverScheduled = false;
    const spans = this.pending;
    this.pending = [];
    for (const span of spans) this.inner.onEnd(span);
  };

  constructor(
    private readonly inner: SpanProcessor,
    private readonly maxQueueSize: number,
    private readonly dropped: (reason: SpanDropReason, count: number) => void,
  ) {}

  released(count: number): void {
    this.queued = Math.max(0, this.queued - count);
  }

  onStart(span: Span, parentContext: Context): void {
    this.inner.onStart(span, parentContext);
  }

  onEnd(span: ReadableSpan): void {
    if ((span.spanContext().traceFlags & TraceFlags.SAMPLED) === 0) return;
    if (this.queued >= this.maxQueueSize) {
      this.dropped('queue_full', 1);
      return;
    }
    this.queued++;
    this.pending.push(span);
    if (!this.handOverScheduled) {
      this.handOverScheduled = true;
      setImmediate(this.handOver);
    }
  }

  forceFlush(): Promise<void> {
    this.handOverNow();
    return this.inner.forceFlush();
  }

  shutdown(): Promise<void> {
    this.handOverNow();
    return this.inner.shutdown();
  }

  private handOverNow(): void {
    if (this.pending.length > 0) this.handOver();
  }
}
