import * as grpc from '@grpc/grpc-js';

export type ServingStatus = 'SERVING' | 'NOT_SERVING';

export interface HealthService {
  readonly implementation: grpc.UntypedServiceImplementation;
  /** Sets the status of the whole server ("") and of every named service. */
  setAll(status: ServingStatus): void;
  status(service: string): ServingStatus | undefined;
  /** Ends every Watch stream, which would otherwise hold a graceful shutdown open. */
  endWatches(): void;
}

/** grpc.health.v1.Health: Check, Watch and List over a fixed set of services. */
export function createHealthService(serviceNames: readonly string[]): HealthService {
  const statuses = new Map<string, ServingStatus>(['', ...serviceNames].map((name) => [name, 'NOT_SERVING']));
  const watchers = new Set<{ service: string; call: grpc.ServerWritableStream<{ service?: string }, unknown> }>();

  const check: grpc.handleUnaryCall<{ service?: string }, unknown> = (call, callback) => {
    const status = statuses.get(call.request.service ?? '');
    if (status === undefined) callback({ code: grpc.status.NOT_FOUND, details: `unknown service ${call.request.service}` });
    else callback(null, { status });
  };

  const watch: grpc.handleServerStreamingCall<{ service?: string }, unknown> = (call) => {
    const service = call.request.service ?? '';
    const watcher = { service, call };
    watchers.add(watcher);
    call.write({ status: statuses.get(service) ?? 'SERVICE_UNKNOWN' });
    const forget = () => watchers.delete(watcher);
    call.on('cancelled', forget);
    call.on('error', forget);
    call.on('close', forget);
  };

  const list: grpc.handleUnaryCall<unknown, unknown> = (_call, callback) => {
    const listed: Record<string, { status: ServingStatus }> = {};
    for (const [name, status] of statuses) listed[name] = { status };
    callback(null, { statuses: listed });
  };

  return {
    implementation: { Check: check, Watch: watch, List: list },
    setAll(status) {
      for (const name of statuses.keys()) statuses.set(name, status);
      for (const { service, call } of watchers) {
        if (!call.cancelled) call.write({ status: statuses.get(service) ?? 'SERVICE_UNKNOWN' });
      }
    },
    status: (service) => statuses.get(service),
    endWatches() {
      for (const { call } of watchers) if (!call.cancelled) call.end();
      watchers.clear();
    },
  };
}
