import cluster from 'node:cluster';
import { performance } from 'node:perf_hooks';
import { createAuthzAdapter } from './envoy/authz-adapter.js';
import { createDecisionReporter } from './envoy/decision-reporter.js';
import { createBudgetTracker } from './envoy/budget-tracker.js';
import { createExchangeSettlement } from './envoy/exchange-settlement.js';
import { createExtProcSessionFactory } from './envoy/ext-proc-session.js';
import { createUsageReporter } from './envoy/usage-reporter.js';
import { createForwardAuthAdapter } from './envoy/forward-auth-adapter.js';
import { isGenopsError } from './errors/genops-error.js';
import { createDecisionEngine } from './governance/decision-engine.js';
import { createBudgeter } from './governance/budgeting.js';
import { createGovernor } from './governance/governor.js';
import { createRateLimiter } from './governance/rate-limiting.js';
import { createUsageAccounting } from './governance/usage-accounting.js';
import type { BudgetLedger } from './limits/budget-ledger.js';
import type { ExchangeClaims } from './limits/exchange-claims.js';
import { createSharedMeteringFor, sharedHandoffKey } from './envoy/shared-metering-wiring.js';
import { createMemoryBudgetLedger } from './limits/memory-budget-ledger.js';
import { createMemoryRateLimitStore } from './limits/memory-rate-limit-store.js';
import type { RateLimitStore } from './limits/rate-limit-store.js';
import { DEFAULT_POLICY_PATH } from './policy/default-policy.js';
import type { CompiledPolicy } from './policy/compiled-policy.js';
import { createIsolatedPolicyLoader } from './policy/isolated-policy-loader.js';
import { createPolicyWatcher, type PolicyStore } from './policy/policy-watcher.js';
import { startAdminServer } from './server/admin-server.js';
import { startForwardAuthServer } from './server/forward-auth-server.js';
import { startGrpcServer } from './server/grpc-server.js';
import { connectWorker } from './server/worker-link.js';
import { startWorkerPrimary } from './server/worker-primary.js';
import { createServiceTls } from './server/service-tls.js';
import { loadSettings } from './settings/settings.js';
import { untrustedPayloadHeaderWarning } from './settings/trust-settings.js';
import { inMemoryBudgetWarning } from './settings/replica-warning.js';
import { withPayloadHeaderTrust } from './governance/payload-header-trust.js';
import { createLogger } from './telemetry/logger.js';
import { createCounterChildren } from './telemetry/labelled-children.js';
import { createMetrics } from './telemetry/metrics.js';

async function main(): Promise<void> {
  const settings = loadSettings(process.argv.slice(2), process.env);
  // Policies are parsed and validated in a child process: zod and yaml never load here.
  const policyLoader = createIsolatedPolicyLoader();
  if (settings.workers > 1 && cluster.isPrimary) {
    // The primary checks the policy once (a bad one stops the start-up here, with one line), then forks.
    await policyLoader.loadFile(settings.policyPath ?? DEFAULT_POLICY_PATH);
    await startWorkerPrimary({ workers: settings.workers, host: settings.listenHost, adminPort: settings.adminPort, drainTimeoutMs: settings.drainTimeoutMs, budgetsToken: settings.trust.adminToken, logger: createLogger({ level: settings.logLevel }) });
    return;
  }
  const inWorker = cluster.isWorker;
  const logger = inWorker ? createLogger({ level: settings.logLevel }).child({ worker: Number(process.env.GENOPS_WORKER_INDEX) }) : createLogger({ level: settings.logLevel });
  const metrics = createMetrics({ customerLabel: settings.metricsCustomerLabel });
  // ioredis and the OTLP exporter are loaded only when configured: ~10 MB of RSS (98 instead
  // of 110 MB idle) that a process without Redis or tracing does not need.
  const tracing = settings.tracing.enabled ? (await import('./telemetry/tracer.js')).createTracing({ ...settings.tracing, metrics, logger }) : undefined;
  const now = () => performance.now();

  // Once per process: at start, or at the first reload that adds a budget.
  let replicaWarned = false;
  const warnOfReplicaBudgets = (loaded: CompiledPolicy) => {
    const warning = replicaWarned ? undefined : inMemoryBudgetWarning({ redisUrl: settings.redisUrl, singleReplica: settings.trust.singleReplica, policy: loaded });
    if (!warning) return;
    replicaWarned = true;
    logger.warn({ event: 'budgets_per_replica', budgets: warning.budgets }, warning.message);
  };
  const policyPath = settings.policyPath ?? DEFAULT_POLICY_PATH;
  const initial = await policyLoader.loadFile(policyPath);
  let policyStore: PolicyStore | undefined;
  if (settings.policyPath !== undefined) {
    policyStore = createPolicyWatcher({
      path: settings.policyPath,
      initial,
      load: policyLoader.loadText,
      onReload(outcome) {
        if (outcome.result === 'unchanged') return;
        metrics.policyReloads.inc({ result: outcome.result });
        if (outcome.result === 'success') {
          logger.info({ event: 'policy_reloaded', policy: outcome.policy.name, checksum: outcome.policy.checksum }, 'policy reloaded');
          warnOfReplicaBudgets(outcome.policy);
        }
        else logger.error({ event: 'policy_reload_failed', err: outcome.error.message }, 'policy reload failed; the last good policy stays in force');
      },
    });
  }
  const policy = policyStore ? policyStore.current : () => initial;

  const engine = createDecisionEngine({ policy });
  const reporter = createDecisionReporter({ metrics, logger, now, tracing, customerLabelLimit: settings.metricsCustomerLimit, labelIdleMs: settings.metricsLabelIdleMs });
  const backendErrorLog = throttle(5_000);
  const onBackendError = (error: Error) => {
    metrics.backendErrors.inc({ backend: 'redis', kind: error.name === 'GenopsError' ? 'command' : 'connection' });
    if (backendErrorLog()) logger.warn({ event: 'backend_error', backend: 'redis', err: error.message }, 'rate-limit backend error; limits follow their failure mode');
  };
  const { clockOffsetMs } = settings;
  const clock = clockOffsetMs === 0 ? () => Date.now() : () => Date.now() + clockOffsetMs;
  let rateLimitStore: RateLimitStore;
  let ledger: BudgetLedger;
  let exchangeClaims: ExchangeClaims | undefined;
  let handoffKey: string | (() => string | undefined) | undefined;
  if (settings.redisUrl) {
    const { connectRedis, waitForRedis } = await import('./limits/redis-connection.js');
    const { createRedisRateLimitStore } = await import('./limits/redis-rate-limit-store.js');
    const client = connectRedis(settings.redis!, { timeoutMs: settings.redisTimeoutMs, onError: onBackendError });
    // Serve either way: until Redis answers, each limit follows its failure mode.
    if (!(await waitForRedis(client, 2_000))) logger.warn({ event: 'backend_not_ready', backend: 'redis' }, 'redis is not reachable yet; rate limits follow their failure mode until it is');
    rateLimitStore = createRedisRateLimitStore({ client, clock });
    const { createRedisBudgetLedger } = await import('./limits/redis-budget-ledger.js');
    ledger = createRedisBudgetLedger({ client, clock });
    exchangeClaims = (await import('./limits/redis-exchange-claims.js')).createRedisExchangeClaims({ client });
    handoffKey = settings.meteringHandoffSecret ?? (await sharedHandoffKey(client, logger));
  } else {
    rateLimitStore = createMemoryRateLimitStore({ clock, maxBuckets: settings.rateLimitMaxBuckets });
    ledger = createMemoryBudgetLedger({ clock });
  }
  const countLimitCheck = createCounterChildren(metrics.rateLimitChecks);
  const rateLimiter = createRateLimiter({
    store: rateLimitStore,
    policy,
    observer: {
      limitChecked: (limit, outcome) => countLimitCheck({ limit, outcome }),
      backendFailed: onBackendError,
      internalError: (error) => {
        metrics.internalErrors.inc({ component: 'rate_limit' });
        logger.error({ event: 'internal_error', component: 'rate_limit', err: error.message, stack: error.stack }, 'rate-limit error; limits follow their failure mode');
      },
    },
  });
  const budgetTracker = createBudgetTracker({ metrics, logger, ledger, policy, clock, accountIdleMs: settings.metricsLabelIdleMs });
  const budgeter = createBudgeter({ ledger, policy, clock, observer: budgetTracker, holdTtlMs: settings.budgetHoldTtlMs });
  const governor = createGovernor({ engine, rateLimiter, budgeter });
  const settle = createExchangeSettlement({
    budgeter,
    accounting: createUsageAccounting({ policy }),
    reporter: createUsageReporter({ metrics, logger, tracing, customerLabelLimit: settings.metricsCustomerLimit, labelIdleMs: settings.metricsLabelIdleMs }),
    rateLimiter,
    now,
  });
  const sharedMetering = exchangeClaims && handoffKey ? createSharedMeteringFor({ secret: handoffKey, claims: exchangeClaims, clock, budgeter, metrics, logger, claimTtlMs: settings.meteringClaimTtlMs, holdTtlMs: settings.budgetHoldTtlMs }) : undefined;
  let draining = false;
  const serviceTls = settings.tls ? await createServiceTls(settings.tls, logger) : undefined;

  const grpcServer = await startGrpcServer({
    ...serviceTls?.grpcBinding(),
    host: settings.listenHost,
    port: settings.grpcPort,
    socketPath: settings.grpcSocket,
    authz: createAuthzAdapter({ governor: withPayloadHeaderTrust(governor, settings.trust.trustPayloadHeader.has('ext_authz')), reporter, policy, now }),
    extProc: createExtProcSessionFactory({
      governor: withPayloadHeaderTrust(governor, settings.trust.trustPayloadHeader.has('ext_proc')),
      reporter,
      policy,
      now,
      settle,
      meteringGraceMs: settings.meteringGraceMs,
      sharedMetering,
      unmatchedMetering: (decisionId) => {
        metrics.meteringUnmatched.inc();
        logger.warn({ event: 'metering_unmatched', decision_id: decisionId }, 'a metering stream named an AI exchange this process does not hold: route both ext_proc filters of an Envoy to the same genops-mesh process');
      },
    }),
    logger,
    metrics,
  });
  const forwardAuth = settings.forwardAuthPort > 0
    ? await startForwardAuthServer({ host: settings.listenHost, port: settings.forwardAuthPort, adapter: createForwardAuthAdapter({ governor: withPayloadHeaderTrust(governor, settings.trust.trustPayloadHeader.has('forward_auth'), { withoutJwtMetadata: true }), reporter, now, policy, uriHeader: settings.forwardAuthUriHeader, methodHeader: settings.forwardAuthMethodHeader }), logger, tls: serviceTls })
    : undefined;
  // In a worker the primary serves admin HTTP for all (metrics aggregated, budgets merged).
  const admin = inWorker
    ? undefined
    : await startAdminServer({
        host: settings.listenHost,
        port: settings.adminPort,
        metrics,
        isReady: () => !draining,
        budgets: () => budgetTracker.snapshot(),
        budgetsToken: settings.trust.adminToken,
      });
  if (inWorker) connectWorker({ registry: metrics.registry, budgets: () => budgetTracker.snapshot() }).ready();
  logger.info(
    { event: 'listening', grpc_port: grpcServer.port, admin_port: admin?.port ?? 'primary', forward_auth_port: forwardAuth?.port ?? 'disabled', policy: initial.name, policy_path: policyPath, rate_limit_backend: settings.redis ? (settings.redis.kind === 'cluster' ? 'redis-cluster' : 'redis') : 'memory', tls: serviceTls ? (serviceTls.mutual ? 'mutual' : 'server') : 'off', traces_endpoint: tracing ? settings.tracing.endpoint : 'disabled' },
    `genops-mesh serving gRPC on ${settings.listenHost}:${grpcServer.port}, admin on ${settings.listenHost}:${admin?.port ?? settings.adminPort}`,
  );
  warnOfReplicaBudgets(initial);
  const untrustedHeader = untrustedPayloadHeaderWarning(initial.identity, settings.trust);
  if (untrustedHeader) logger.warn({ event: 'payload_header_untrusted' }, untrustedHeader);

  const shutdown = async (signal: string) => {
    if (draining) return;
    draining = true;
    logger.info({ event: 'draining', signal, timeout_ms: settings.drainTimeoutMs }, 'draining in-flight calls');
    policyStore?.close();
    await Promise.all([grpcServer.drain(settings.drainTimeoutMs), forwardAuth?.close(settings.drainTimeoutMs)]);
    await admin?.close();
    serviceTls?.close();
    await rateLimitStore.close();
    await ledger.close();
    await tracing?.shutdown(2_000);
    logger.info({ event: 'stopped' }, 'stopped');
    logger.flush();
    process.exitCode = 0;
    setTimeout(() => process.exit(0), 200).unref();
  };
  process.once('SIGTERM', () => void shutdown('SIGTERM'));
  process.once('SIGINT', () => void shutdown('SIGINT'));
  // A worker whose primary is gone has no admin endpoint and no one to restart it: drain and go.
  if (inWorker) process.once('disconnect', () => void shutdown('primary_exited'));
}

/** True at most once per interval: keeps a failing backend from flooding the log. */
function throttle(intervalMs: number): () => boolean {
  let last = -Infinity;
  return () => {
    const now = Date.now();
    if (now - last < intervalMs) return false;
    last = now;
    return true;
  };
}

main().catch((error: unknown) => {
  const message = isGenopsError(error) ? error.message : error instanceof Error ? (error.stack ?? error.message) : String(error);
  process.stderr.write(`genops-mesh: ${message}\n`);
  process.exit(isGenopsError(error) ? 2 : 1);
});
