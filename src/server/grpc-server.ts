import cluster from 'node:cluster';
import { lstatSync, rmSync } from 'node:fs';
import type { ServerOptions as Http2ServerOptions } from 'node:http2';
import * as grpc from '@grpc/grpc-js';
import { GenopsError, isGenopsError } from '../errors/genops-error.js';
import type { AuthzAdapter } from '../envoy/authz-adapter.js';
import type { CheckRequest, ProcessingRequest, ProcessingResponse } from '../envoy/envoy-messages.js';
import { METERING_STREAM_HEADER, type ExtProcReplies, type ExtProcSessionFactory } from '../envoy/ext-proc-session.js';
import { encodeCheckResponse, encodeProcessingResponse } from '../envoy/response-encoding.js';
import type { Logger } from '../telemetry/logger.js';
import type { Metrics, ServiceName } from '../telemetry/metrics.js';
import { createHealthService, type HealthService } from './health-service.js';
import { AUTHORIZATION_SERVICE, EXTERNAL_PROCESSOR_SERVICE, loadRequestDecoders, loadServiceDefinitions } from './proto-definitions.js';

export interface GrpcServer {
  readonly port: number;
  readonly health: HealthService;
  /** Reports NOT_SERVING, lets in-flight calls finish for up to `timeoutMs`, then closes the rest. */
  drain(timeoutMs: number): Promise<void>;
}

export interface GrpcServerOptions {
  readonly host: string;
  readonly port: number;
  readonly authz: AuthzAdapter;
  readonly extProc: ExtProcSessionFactory;
  readonly logger: Logger;
  readonly metrics: Metrics;
  /** TLS / mTLS credentials (service-tls.ts); plaintext when absent. */
  readonly credentials?: grpc.ServerCredentials | undefined;
  /** Also serve on this Unix domain socket path (GENOPS_GRPC_SOCKET): a sidecar Envoy's `pipe` address. */
  readonly socketPath?: string | undefined;
  /** Listens itself and hands accepted connections to the server (service-tls.ts, mTLS with an allow-list); replaces bindAsync. */
  readonly listen?: ((server: grpc.Server, host: string, port: number) => Promise<GrpcListener>) | undefined;
}

export interface GrpcListener {
  readonly port: number;
  /** Stops accepting connections; open ones drain with the server. */
  close(): void;
}

export async function startGrpcServer(options: GrpcServerOptions): Promise<GrpcServer> {
  const { authz, extProc, logger, metrics } = options;
  const definitions = loadServiceDefinitions();
  const decoders = loadRequestDecoders();
  const server = new grpc.Server({
    'grpc.keepalive_permit_without_calls': 1,
    'grpc.max_receive_message_length': 8 * 1024 * 1024,
    // channelz (per-call bookkeeping for grpc's debug service) is not served here: skip its cost.
    'grpc.enable_channelz': 0,
  });
  allowEnvoyStreamResets(server);
  const health = createHealthService([AUTHORIZATION_SERVICE, EXTERNAL_PROCESSOR_SERVICE]);

  /** The one place an RPC failure becomes a gRPC status, a log line and a metric sample. */
  function failure(service: ServiceName, error: unknown): grpc.ServiceError {
    if (isGenopsError(error, 'malformed_request')) {
      metrics.malformedMessages.inc({ service });
      logger.warn({ event: 'malformed_message', service, err: error.message }, 'malformed message from Envoy');
      return Object.assign(new Error(error.message), { code: grpc.status.INVALID_ARGUMENT, details: error.message, metadata: new grpc.Metadata() });
    }
    logger.error({ event: 'rpc_failure', service, err: error }, 'governance RPC failed');
    const message = error instanceof Error ? error.message : String(error);
    return Object.assign(new Error(message), { code: grpc.status.INTERNAL, details: `internal error: ${message}`, metadata: new grpc.Metadata() });
  }

  const check: grpc.handleUnaryCall<CheckRequest, unknown> = (call, callback) => {
    try {
      const response = authz.check(call.request);
      if (response instanceof Promise) response.then((settled) => callback(null, settled), (error: unknown) => callback(failure('authz', error)));
      else callback(null, response);
    } catch (error) {
      callback(failure('authz', error));
    }
  };

  // LOG_LEVEL=trace: one line per ext_proc stream event (open, message kind, reply, end) with a
  // monotonic time in µs, for the timeline of an exchange (bench/RESULTS.md). Off: one branch per event.
  const traceStreams = logger.isLevelEnabled('trace');
  let streamCount = 0;

  const process: grpc.handleBidiStreamingCall<ProcessingRequest, ProcessingResponse> = (call) => {
    const streamId = ++streamCount;
    const trace = traceStreams
      ? (event: string, detail?: Record<string, unknown>) => logger.trace({ event: 'ext_proc_stream', stream: streamId, step: event, t_us: Math.round(performance.now() * 1000), ...detail }, 'ext_proc stream')
      : undefined;
    // The deciding filter declares observed metering in its grpc_service.initial_metadata.
    const metering = call.metadata.get(METERING_STREAM_HEADER)[0];
    const session = extProc.open({ observedMetering: metering === 'observed' ? true : metering === 'streams' ? 'streams' : false });
    trace?.('open', { observed: metering });
    let closed = false;
    // Replies must leave in the order the messages came; once one waits on a
    // backend, the ones after it queue behind it.
    let pending: Promise<void> | undefined;
    const close = () => {
      trace?.('reset');
      closed = true;
      endSession();
    };
    // The session settles what its exchange left open (an interrupted stream's usage) once the stream is over.
    let sessionEnded = false;
    const endSession = () => {
      if (sessionEnded) return;
      sessionEnded = true;
      try {
        session.close();
      } catch (error) {
        logger.error({ event: 'rpc_failure', service: 'ext_proc', err: error }, 'settling an ext_proc stream failed');
      }
    };
    // Envoy ends every stream with a reset: cancellation is the normal end.
    call.on('cancelled', close);
    call.on('error', close);
    // Envoy half-closed: finish the replies still owed, then end the stream.
    call.on('end', () => {
      trace?.('half_close');
      const finish = () => {
        endSession();
        if (closed) return;
        closed = true;
        call.end();
      };
      if (pending) void pending.then(finish, finish);
      else finish();
    });
    const fail = (error: unknown) => {
      if (closed) return;
      closed = true;
      endSession();
      // grpc-js turns an 'error' event on a server stream into the stream's final status.
      call.emit('error', failure('ext_proc', error));
    };
    const send = (replies: ExtProcReplies) => {
      if (Array.isArray(replies)) {
        trace?.('reply', { sent: replies.length > 0 && !closed, count: replies.length });
        if (!closed) for (const reply of replies) call.write(reply);
        return;
      }
      const reply = replies as ProcessingResponse | undefined;
      trace?.('reply', { sent: reply !== undefined && !closed });
      if (reply && !closed) {
        call.write(reply);
        // A deciding stream that handed its exchange over has nothing left to ask: ending it cleanly
        // makes Envoy ignore it for the rest of the request, so this replica's exit cannot cut the answer.
        if (session.done) {
          closed = true;
          endSession();
          call.end();
        }
      }
      // A metering stream whose response ended: end it now rather than at Envoy's deferred close.
      else if (!reply && !closed && session.done) {
        closed = true;
        endSession();
        call.end();
      }
    };
    const handle = (request: ProcessingRequest): Promise<void> | undefined => {
      if (closed) return undefined;
      try {
        const reply = session.replies(request);
        if (!(reply instanceof Promise)) {
          send(reply);
          return undefined;
        }
        return reply.then(send, fail);
      } catch (error) {
        fail(error);
        return undefined;
      }
    };
    call.on('data', (request: ProcessingRequest) => {
      trace?.('message', { kind: messageKind(request), bytes: request.request_body?.body?.length ?? request.response_body?.body?.length, end: request.request_headers?.end_of_stream ?? request.request_body?.end_of_stream ?? request.response_headers?.end_of_stream ?? request.response_body?.end_of_stream, observability: request.observability_mode });
      if (pending) {
        const queued: Promise<void> = pending.then(() => handle(request)).finally(() => {
          if (pending === queued) pending = undefined;
        });
        pending = queued;
        return;
      }
      const started = handle(request);
      if (started) {
        const tracked: Promise<void> = started.finally(() => {
          if (pending === tracked) pending = undefined;
        });
        pending = tracked;
      }
    });
  };

  // The hot path's codecs: Envoy's requests decoded without a copy, our responses encoded directly.
  server.addService(withCodecs(definitions.authorization, 'Check', decoders.checkRequest, encodeCheckResponse), { Check: check });
  server.addService(withCodecs(definitions.externalProcessor, 'Process', decoders.processingRequest, encodeProcessingResponse), { Process: process });
  server.addService(definitions.health, health.implementation);

  const listener = options.listen ? await options.listen(server, options.host, options.port) : undefined;
  const port = listener ? listener.port : await new Promise<number>((resolve, reject) => {
    server.bindAsync(`${options.host}:${options.port}`, options.credentials ?? grpc.ServerCredentials.createInsecure(), (error, boundPort) => {
      if (error) reject(new GenopsError('invalid_settings', `cannot listen for gRPC on ${options.host}:${options.port}: ${error.message}`, { cause: error }));
      else resolve(boundPort);
    });
  });
  if (options.socketPath) await bindSocket(server, options.socketPath, options.credentials, options.listen !== undefined);
  health.setAll('SERVING');

  return {
    port,
    health,
    async drain(timeoutMs) {
      health.setAll('NOT_SERVING');
      health.endWatches();
      listener?.close();
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, timeoutMs);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    },
  };
}

function messageKind(request: ProcessingRequest): string {
  for (const kind of ['request_headers', 'request_body', 'request_trailers', 'response_headers', 'response_body', 'response_trailers'] as const) if (request[kind]) return kind;
  return 'unknown';
}

/**
 * Serves the same services on a Unix domain socket as well: no TCP stack between a sidecar Envoy
 * and the service. A socket file left by an earlier run is replaced. The mTLS allow-list works on
 * TCP connections it accepts itself, so it cannot guard the socket: that combination is refused
 * (the socket's file permissions are its guard), as are worker processes (GENOPS_WORKERS).
 */
async function bindSocket(server: grpc.Server, path: string, credentials: grpc.ServerCredentials | undefined, allowList: boolean): Promise<void> {
  if (allowList) throw new GenopsError('invalid_settings', `GENOPS_GRPC_SOCKET=${path}: a Unix socket cannot be combined with GENOPS_TLS_CLIENT_ALLOW (the allow-list guards TCP connections only)`);
  // Workers would replace each other's socket file (one path, several listeners): one process per socket.
  if (cluster.isWorker) throw new GenopsError('invalid_settings', `GENOPS_GRPC_SOCKET=${path}: a Unix socket serves one process; it cannot be combined with GENOPS_WORKERS > 1`);
  try {
    if (lstatSync(path).isSocket()) rmSync(path);
  } catch {
    // no such file: nothing to replace
  }
  await new Promise<void>((resolve, reject) => {
    server.bindAsync(`unix:${path}`, credentials ?? grpc.ServerCredentials.createInsecure(), (error) => {
      if (error) reject(new GenopsError('invalid_settings', `cannot listen for gRPC on the Unix socket ${path}: ${error.message}`, { cause: error }));
      else resolve();
    });
  });
}

/**
 * Incoming RST_STREAM frames Node's HTTP/2 server accepts per connection
 * before it closes the connection with GOAWAY (its defense against "rapid
 * reset" floods; Node's defaults are a burst of 1000, then 33 a second).
 * Envoy ends every ext_proc stream with a reset, so with the defaults a
 * sidecar sending more than ~33 requests a second through ext_proc loses
 * its connection about every second and the requests on it fail (503).
 * The peer here is Envoy; the bound stays, far above any real request rate.
 */
export const STREAM_RESET_LIMIT = { streamResetBurst: 100_000, streamResetRate: 100_000 } as const;

/**
 * grpc-js builds the options of its http2 server itself and has no channel
 * option for the reset limit: add it to those options before bindAsync.
 */
function allowEnvoyStreamResets(server: grpc.Server): void {
  const internals = server as unknown as { commonServerOptions?: Http2ServerOptions & Partial<typeof STREAM_RESET_LIMIT> };
  if (!internals.commonServerOptions) {
    throw new GenopsError('invalid_settings', 'this @grpc/grpc-js version no longer exposes its http2 server options: the ext_proc stream-reset limit cannot be raised');
  }
  Object.assign(internals.commonServerOptions, STREAM_RESET_LIMIT);
}

/** The service definition with `method`'s requests and responses going through `decode` and `encode` instead of proto-loader's generic codecs. */
function withCodecs<Response>(service: grpc.ServiceDefinition, method: string, decode: (buffer: Buffer) => unknown, encode: (response: Response) => Buffer): grpc.ServiceDefinition {
  const definition = service[method];
  if (!definition) throw new Error(`service definition has no method ${method}`);
  return { ...service, [method]: { ...definition, requestDeserialize: decode, responseSerialize: encode } };
}
