import cluster, { type Worker } from 'node:cluster';
import { AggregatorRegistry, Counter, Gauge, Registry, type PrometheusContentType } from 'prom-client';
import type { Logger } from '../telemetry/logger.js';
import type { Metrics } from '../telemetry/metrics.js';
import { startAdminServer } from './admin-server.js';
import { BUDGETS_REQUEST, BUDGETS_RESPONSE, WORKER_READY, type WorkerMessage } from './worker-link.js';

export interface WorkerPrimaryOptions {
  readonly workers: number;
  readonly host: string;
  readonly adminPort: number;
  /** How long SIGTERM waits for the workers to drain before killing them. */
  readonly drainTimeoutMs: number;
  readonly logger: Logger;
  /** Bearer token for /budgets (GENOPS_ADMIN_TOKEN); undefined = /budgets is off. */
  readonly budgetsToken?: string | undefined;
  /** Past this many unexpected worker exits within restartWindowMs the primary gives up (exit 1): the pod restarts. */
  readonly maxRestarts?: number;
  readonly restartWindowMs?: number;
}

/**
 * GENOPS_WORKERS > 1: this process forks the workers, each running the whole service on the
 * shared gRPC and forward-auth ports (Node's cluster module hands accepted connections to the
 * workers in turn), and serves the one admin endpoint: /metrics aggregated over the workers,
 * /readyz ready when every worker listens, /budgets merged. A worker that dies is replaced;
 * SIGTERM drains every worker, then exits.
 */
export async function startWorkerPrimary(options: WorkerPrimaryOptions): Promise<void> {
  const { logger } = options;
  const maxRestarts = options.maxRestarts ?? 5;
  const restartWindowMs = options.restartWindowMs ?? 60_000;
  const own = new Registry();
  const liveWorkers = new Gauge({ name: 'genops_workers', help: 'Worker processes listening (GENOPS_WORKERS).', registers: [own] });
  const restarts = new Counter({ name: 'genops_worker_restarts_total', help: 'Workers replaced after an unexpected exit.', registers: [own] });
  const aggregator = new AggregatorRegistry<PrometheusContentType>();

  const ready = new Set<number>();
  const everReady = new Set<number>();
  const slotOf = new Map<number, number>();
  const recentExits: number[] = [];
  let draining = false;

  const fork = (slot: number) => {
    const worker = cluster.fork({ GENOPS_WORKER_INDEX: String(slot) });
    slotOf.set(worker.id, slot);
    worker.on('message', (message: WorkerMessage) => {
      if (message?.type !== WORKER_READY) return;
      ready.add(worker.id);
      everReady.add(slot);
      liveWorkers.set(ready.size);
    });
    return worker;
  };

  const stopAll = (signal: NodeJS.Signals) => {
    for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill(signal);
  };

  cluster.on('exit', (worker: Worker, code: number | null, signal: string | null) => {
    ready.delete(worker.id);
    liveWorkers.set(ready.size);
    const slot = slotOf.get(worker.id)!;
    slotOf.delete(worker.id);
    if (draining) {
      if (Object.keys(cluster.workers ?? {}).length === 0) finish();
      return;
    }
    if (!everReady.has(slot)) {
      // A worker that never listened (port taken, bad certificate): the same would happen again.
      logger.fatal({ event: 'worker_failed_to_start', worker: slot, pid: worker.process.pid, code, signal }, 'a worker failed to start; stopping');
      draining = true;
      stopAll('SIGKILL');
      logger.flush();
      process.exit(code === 2 ? 2 : 1);
    }
    const now = Date.now();
    recentExits.push(now);
    while (recentExits.length > 0 && recentExits[0]! < now - restartWindowMs) recentExits.shift();
    if (recentExits.length > maxRestarts) {
      logger.fatal({ event: 'workers_crash_looping', exits: recentExits.length, window_ms: restartWindowMs }, 'workers keep exiting; stopping so the pod restarts');
      draining = true;
      stopAll('SIGKILL');
      logger.flush();
      process.exit(1);
    }
    logger.error({ event: 'worker_exited', worker: slot, pid: worker.process.pid, code, signal }, 'a worker exited unexpectedly; starting a new one');
    restarts.inc();
    fork(slot);
  });

  const admin = await startAdminServer({
    host: options.host,
    port: options.adminPort,
    metrics: { registry: createMergedRegistry(aggregator, own) } as Pick<Metrics, 'registry'> as Metrics,
    isReady: () => !draining && ready.size === options.workers,
    budgets: () => collectBudgets(),
    budgetsToken: options.budgetsToken,
  });

  let budgetRequests = 0;
  const collectBudgets = async (): Promise<unknown> => {
    const requestId = ++budgetRequests;
    const workers = Object.values(cluster.workers ?? {}).filter((worker): worker is Worker => worker !== undefined && worker.isConnected());
    const replies = await Promise.all(workers.map((worker) => new Promise<WorkerMessage>((resolve, reject) => {
      const timer = setTimeout(() => {
        worker.off('message', onMessage);
        reject(new Error('a worker did not answer within 5 s'));
      }, 5_000);
      const onMessage = (message: WorkerMessage) => {
        if (message?.type !== BUDGETS_RESPONSE || message.requestId !== requestId) return;
        clearTimeout(timer);
        worker.off('message', onMessage);
        resolve(message);
      };
      worker.on('message', onMessage);
      worker.send({ type: BUDGETS_REQUEST, requestId });
    })));
    const failed = replies.find((reply) => reply.error !== undefined);
    if (failed) throw new Error(failed.error);
    return mergeBudgetSnapshots(replies.map((reply) => reply.document as BudgetDocument | undefined));
  };

  let finished = false;
  const finish = () => {
    if (finished) return;
    finished = true;
    void admin.close().then(() => {
      logger.info({ event: 'stopped' }, 'stopped');
      logger.flush();
      process.exitCode = 0;
      setTimeout(() => process.exit(0), 200).unref();
    });
  };
  const shutdown = (signal: NodeJS.Signals) => {
    if (draining) return;
    draining = true;
    logger.info({ event: 'draining', signal, workers: Object.keys(cluster.workers ?? {}).length, timeout_ms: options.drainTimeoutMs }, 'draining every worker');
    stopAll('SIGTERM');
    // Each worker drains within the drain timeout and exits; past it (and a margin) they are killed.
    setTimeout(() => stopAll('SIGKILL'), options.drainTimeoutMs + 5_000).unref();
    if (Object.keys(cluster.workers ?? {}).length === 0) finish();
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));

  for (let slot = 1; slot <= options.workers; slot++) fork(slot);
  logger.info({ event: 'workers_started', workers: options.workers, admin_port: admin.port }, `genops-mesh primary: ${options.workers} workers, admin on ${options.host}:${admin.port}`);
}

/** /metrics of the primary: every worker's registry aggregated, then the primary's own. */
function createMergedRegistry(aggregator: AggregatorRegistry<PrometheusContentType>, own: Registry): Registry {
  const merged = new Registry();
  merged.metrics = async () => `${await aggregator.clusterMetrics()}\n${await own.metrics()}`;
  return merged;
}

interface BudgetDocument {
  readonly budgets: readonly { readonly name: string; readonly accounts: readonly { readonly key: string; readonly spent_usd: number; readonly reserved_usd: number }[] }[];
  readonly untracked_accounts: number;
}

/**
 * Each worker lists the accounts it has seen, read from the shared store: the union, one entry
 * per account (the freshest reading: the most spent and reserved).
 */
export function mergeBudgetSnapshots(documents: readonly (BudgetDocument | undefined)[]): BudgetDocument | undefined {
  const present = documents.filter((document): document is BudgetDocument => document !== undefined);
  if (present.length === 0) return undefined;
  const budgets = present[0]!.budgets.map((budget) => {
    const accounts = new Map<string, BudgetDocument['budgets'][number]['accounts'][number]>();
    for (const document of present) {
      for (const account of document.budgets.find((candidate) => candidate.name === budget.name)?.accounts ?? []) {
        const seen = accounts.get(account.key);
        if (!seen || account.spent_usd + account.reserved_usd > seen.spent_usd + seen.reserved_usd) accounts.set(account.key, account);
      }
    }
    return { ...budget, accounts: [...accounts.values()].sort((a, b) => a.key.localeCompare(b.key)) };
  });
  return { budgets, untracked_accounts: present.reduce((sum, document) => sum + document.untracked_accounts, 0) };
}
