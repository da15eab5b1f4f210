import { AggregatorRegistry, type Registry } from 'prom-client';

/** Messages between the primary and its workers (GENOPS_WORKERS > 1), over the cluster IPC channel. */
export const WORKER_READY = 'genops:worker-ready';
export const BUDGETS_REQUEST = 'genops:budgets-request';
export const BUDGETS_RESPONSE = 'genops:budgets-response';

export interface WorkerMessage {
  readonly type: string;
  readonly requestId?: number;
  readonly document?: unknown;
  readonly error?: string;
}

/**
 * A worker's side of the link: its metrics registry answers the primary's aggregation requests
 * (prom-client's AggregatorRegistry protocol), /budgets requests are answered from this
 * worker's tracker, and the primary learns when the worker listens.
 */
export function connectWorker(options: { registry: Registry; budgets?: (() => Promise<unknown>) | undefined }): { ready(): void } {
  AggregatorRegistry.setRegistries(options.registry);
  // Constructing one installs prom-client's worker-side listener for the primary's requests.
  new AggregatorRegistry();
  process.on('message', (message: WorkerMessage) => {
    if (message?.type !== BUDGETS_REQUEST) return;
    const reply = (body: Partial<WorkerMessage>) => process.send?.({ type: BUDGETS_RESPONSE, requestId: message.requestId, ...body });
    if (!options.budgets) reply({ document: undefined });
    else options.budgets().then((document) => reply({ document }), (error: Error) => reply({ error: error.message }));
  });
  return { ready: () => process.send?.({ type: WORKER_READY }) };
}
