import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

/** An attribute value as OTLP carries it, unwrapped from AnyValue. */
export type AttributeValue = string | number | boolean | AttributeValue[] | { [key: string]: AttributeValue } | Buffer | null;

export interface ReceivedEvent {
  readonly name: string;
  readonly timeUnixNano: bigint;
  readonly attributes: Record<string, AttributeValue>;
}

/** One span as the collector received it, ids in lowercase hex. */
export interface ReceivedSpan {
  readonly traceId: string;
  readonly spanId: string;
  /** Empty for a root span. */
  readonly parentSpanId: string;
  readonly traceState: string;
  readonly name: string;
  /** SPAN_KIND_SERVER, SPAN_KIND_INTERNAL, ... */
  readonly kind: string;
  readonly startTimeUnixNano: bigint;
  readonly endTimeUnixNano: bigint;
  readonly attributes: Record<string, AttributeValue>;
  readonly events: ReceivedEvent[];
  readonly status: { readonly code: string; readonly message: string };
  readonly resource: Record<string, AttributeValue>;
  readonly scope: { readonly name: string; readonly version: string };
}

/** How the receiver answers Export: accept, refuse with UNAVAILABLE, or never answer (a hung collector). */
export type ReceiverMode = 'accept' | 'unavailable' | 'hang';

export interface OtlpReceiver {
  readonly port: number;
  /** For OTEL_EXPORTER_OTLP_ENDPOINT: http://127.0.0.1:<port>. */
  readonly endpoint: string;
  /** Every span accepted so far, in arrival order. */
  readonly spans: ReceivedSpan[];
  /** Export calls received, whatever the mode. */
  readonly exportCalls: number;
  mode: ReceiverMode;
  /** Resolves with the accepted spans once `predicate` holds for `count` of them; rejects after `timeoutMs`. */
  waitForSpans(predicate: (span: ReceivedSpan) => boolean, options?: { count?: number; timeoutMs?: number }): Promise<ReceivedSpan[]>;
  stop(): Promise<void>;
}

const PROTO_ROOT = fileURLToPath(new URL('./otlp-proto', import.meta.url));

interface WireAnyValue {
  value?: string;
  string_value?: string;
  bool_value?: boolean;
  int_value?: string;
  double_value?: number;
  array_value?: { values?: WireAnyValue[] };
  kvlist_value?: { values?: WireKeyValue[] };
  bytes_value?: Buffer;
}
interface WireKeyValue {
  key: string;
  value?: WireAnyValue;
}
interface WireSpan {
  trace_id: Buffer;
  span_id: Buffer;
  parent_span_id?: Buffer;
  trace_state?: string;
  name: string;
  kind?: string;
  start_time_unix_nano?: string;
  end_time_unix_nano?: string;
  attributes?: WireKeyValue[];
  events?: { name: string; time_unix_nano?: string; attributes?: WireKeyValue[] }[];
  status?: { code?: string; message?: string };
}
interface WireRequest {
  resource_spans?: {
    resource?: { attributes?: WireKeyValue[] };
    scope_spans?: { scope?: { name?: string; version?: string }; spans?: WireSpan[] }[];
  }[];
}

let definition: grpc.ServiceDefinition | undefined;
function traceService(): grpc.ServiceDefinition {
  if (!definition) {
    const packageDefinition = protoLoader.loadSync('opentelemetry/proto/collector/trace/v1/trace_service.proto', {
      keepCase: true,
      longs: String,
      enums: String,
      defaults: false,
      oneofs: true,
      includeDirs: [PROTO_ROOT],
    });
    const loaded = grpc.loadPackageDefinition(packageDefinition) as unknown as {
      opentelemetry: { proto: { collector: { trace: { v1: { TraceService: grpc.ServiceClientConstructor } } } } };
    };
    definition = loaded.opentelemetry.proto.collector.trace.v1.TraceService.service;
  }
  return definition;
}

/**
 * A real OTLP/gRPC trace receiver (opentelemetry.proto.collector.trace.v1.TraceService/Export)
 * on a loopback port: decodes what an exporter sends, as a collector would.
 */
export async function startOtlpReceiver(options: { port?: number; mode?: ReceiverMode } = {}): Promise<OtlpReceiver> {
  const spans: ReceivedSpan[] = [];
  const waiters = new Set<() => void>();
  const hung: grpc.sendUnaryData<object>[] = [];
  let exportCalls = 0;
  const server = new grpc.Server();
  const receiver = {
    mode: options.mode ?? ('accept' as ReceiverMode),
  };

  server.addService(traceService(), {
    Export(call: grpc.ServerUnaryCall<WireRequest, object>, callback: grpc.sendUnaryData<object>) {
      exportCalls++;
      if (receiver.mode === 'hang') {
        hung.push(callback);
        return;
      }
      if (receiver.mode === 'unavailable') {
        callback({ code: grpc.status.UNAVAILABLE, details: 'collector unavailable (test)' });
        return;
      }
      for (const resourceSpans of call.request.resource_spans ?? []) {
        const resource = attributesOf(resourceSpans.resource?.attributes);
        for (const scopeSpans of resourceSpans.scope_spans ?? []) {
          const scope = { name: scopeSpans.scope?.name ?? '', version: scopeSpans.scope?.version ?? '' };
          for (const span of scopeSpans.spans ?? []) spans.push(toSpan(span, resource, scope));
        }
      }
      callback(null, {});
      for (const wake of waiters) wake();
    },
  });

  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(`127.0.0.1:${options.port ?? 0}`, grpc.ServerCredentials.createInsecure(), (error, bound) => (error ? reject(error) : resolve(bound)));
  });

  return {
    port,
    endpoint: `http://127.0.0.1:${port}`,
    spans,
    get exportCalls() {
      return exportCalls;
    },
    get mode() {
      return receiver.mode;
    },
    set mode(mode: ReceiverMode) {
      receiver.mode = mode;
    },
    waitForSpans(predicate, { count = 1, timeoutMs = 10_000 } = {}) {
      return new Promise<ReceivedSpan[]>((resolve, reject) => {
        const check = () => {
          const matching = spans.filter(predicate);
          if (matching.length < count) return false;
          waiters.delete(check);
          clearTimeout(timer);
          resolve(matching);
          return true;
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`timed out after ${timeoutMs} ms waiting for ${count} matching span(s); received ${spans.length} span(s) in ${exportCalls} export call(s)`));
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
    stop() {
      for (const callback of hung.splice(0)) callback({ code: grpc.status.UNAVAILABLE, details: 'receiver stopped' });
      return new Promise<void>((resolve) => {
        server.tryShutdown(() => resolve());
        setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, 1_000).unref();
      });
    },
  };
}

function toSpan(span: WireSpan, resource: Record<string, AttributeValue>, scope: { name: string; version: string }): ReceivedSpan {
  return {
    traceId: hex(span.trace_id),
    spanId: hex(span.span_id),
    parentSpanId: hex(span.parent_span_id),
    traceState: span.trace_state ?? '',
    name: span.name,
    kind: span.kind ?? 'SPAN_KIND_UNSPECIFIED',
    startTimeUnixNano: BigInt(span.start_time_unix_nano ?? '0'),
    endTimeUnixNano: BigInt(span.end_time_unix_nano ?? '0'),
    attributes: attributesOf(span.attributes),
    events: (span.events ?? []).map((event) => ({ name: event.name, timeUnixNano: BigInt(event.time_unix_nano ?? '0'), attributes: attributesOf(event.attributes) })),
    status: { code: span.status?.code ?? 'STATUS_CODE_UNSET', message: span.status?.message ?? '' },
    resource,
    scope,
  };
}

function hex(bytes: Buffer | undefined): string {
  return bytes ? Buffer.from(bytes).toString('hex') : '';
}

function attributesOf(list: WireKeyValue[] | undefined): Record<string, AttributeValue> {
  const attributes: Record<string, AttributeValue> = {};
  for (const { key, value } of list ?? []) attributes[key] = valueOf(value);
  return attributes;
}

function valueOf(value: WireAnyValue | undefined): AttributeValue {
  switch (value?.value) {
    case 'string_value':
      return value.string_value ?? '';
    case 'bool_value':
      return value.bool_value ?? false;
    case 'int_value':
      return Number(value.int_value ?? 0);
    case 'double_value':
      return value.double_value ?? 0;
    case 'array_value':
      return (value.array_value?.values ?? []).map(valueOf);
    case 'kvlist_value':
      return attributesOf(value.kvlist_value?.values);
    case 'bytes_value':
      return value.bytes_value ?? Buffer.alloc(0);
    default:
      return null;
  }
}
