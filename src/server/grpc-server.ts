import * as grpc from '@grpc/grpc-js';
import { GenopsError, isGenopsError } from '../errors/genops-error.js';
import type { AuthzAdapter } from '../envoy/authz-adapter.js';
import type { CheckRequest, ProcessingRequest, ProcessingResponse } from '../envoy/envoy-messages.js';
import type { ExtProcSessionFactory } from '../envoy/ext-proc-session.js';
import type { Logger } from '../telemetry/logger.js';
import type { Metrics, ServiceName } from '../telemetry/metrics.js';
import { createHealthService, type HealthService } from './health-service.js';
import { AUTHORIZATION_SERVICE, EXTERNAL_PROCESSOR_SERVICE, loadServiceDefinitions } from './proto-definitions.js';

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
}

export async function startGrpcServer(options: GrpcServerOptions): Promise<GrpcServer> {
  const { authz, extProc, logger, metrics } = options;
  const definitions = loadServiceDefinitions();
  const server = new grpc.Server({
    'grpc.keepalive_permit_without_calls': 1,
    'grpc.max_receive_message_length': 8 * 1024 * 1024,
  });
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

  const process: grpc.handleBidiStreamingCall<ProcessingRequest, ProcessingResponse> = (call) => {
    const session = extProc.open();
    let closed = false;
    // Replies must leave in the order the messages came; once one waits on a
    // backend, the ones after it queue behind it.
    let pending: Promise<void> | undefined;
    const close = () => {
      closed = true;
    };
    // Envoy ends every stream with a reset: cancellation is the normal end.
    call.on('cancelled', close);
    call.on('error', close);
    // Envoy half-closed: finish the replies still owed, then end the stream.
    call.on('end', () => {
      const finish = () => {
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
      // grpc-js turns an 'error' event on a server stream into the stream's final status.
      call.emit('error', failure('ext_proc', error));
    };
    const send = (reply: ProcessingResponse | undefined) => {
      if (reply && !closed) call.write(reply);
    };
    const handle = (request: ProcessingRequest): Promise<void> | undefined => {
      if (closed) return undefined;
      try {
        const reply = session.handle(request);
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

  server.addService(definitions.authorization, { Check: check });
  server.addService(definitions.externalProcessor, { Process: process });
  server.addService(definitions.health, health.implementation);

  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(`${options.host}:${options.port}`, grpc.ServerCredentials.createInsecure(), (error, boundPort) => {
      if (error) reject(new GenopsError('invalid_settings', `cannot listen for gRPC on ${options.host}:${options.port}: ${error.message}`, { cause: error }));
      else resolve(boundPort);
    });
  });
  health.setAll('SERVING');

  return {
    port,
    health,
    async drain(timeoutMs) {
      health.setAll('NOT_SERVING');
      health.endWatches();
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
