import { performance } from 'node:perf_hooks';
import { createAuthzAdapter } from './envoy/authz-adapter.js';
import { createDecisionReporter } from './envoy/decision-reporter.js';
import { createExtProcSessionFactory } from './envoy/ext-proc-session.js';
import { isGenopsError } from './errors/genops-error.js';
import { createDecisionEngine } from './governance/decision-engine.js';
import { DEFAULT_POLICY_PATH } from './policy/default-policy.js';
import { createPolicyStore, loadPolicyFile, type PolicyStore } from './policy/policy-store.js';
import { startAdminServer } from './server/admin-server.js';
import { startGrpcServer } from './server/grpc-server.js';
import { loadSettings } from './settings/settings.js';
import { createLogger } from './telemetry/logger.js';
import { createMetrics } from './telemetry/metrics.js';

async function main(): Promise<void> {
  const settings = loadSettings(process.argv.slice(2), process.env);
  const logger = createLogger({ level: settings.logLevel });
  const metrics = createMetrics();
  const now = () => performance.now();

  const policyPath = settings.policyPath ?? DEFAULT_POLICY_PATH;
  const initial = loadPolicyFile(policyPath);
  let store: PolicyStore | undefined;
  if (settings.policyPath !== undefined) {
    store = createPolicyStore({
      path: settings.policyPath,
      initial,
      onReload(outcome) {
        if (outcome.result === 'unchanged') return;
        metrics.policyReloads.inc({ result: outcome.result });
        if (outcome.result === 'success') logger.info({ event: 'policy_reloaded', policy: outcome.policy.name, checksum: outcome.policy.checksum }, 'policy reloaded');
        else logger.error({ event: 'policy_reload_failed', err: outcome.error.message }, 'policy reload failed; the last good policy stays in force');
      },
    });
  }
  const policy = store ? store.current : () => initial;

  const engine = createDecisionEngine({ policy });
  const reporter = createDecisionReporter({ metrics, logger, now });
  let draining = false;

  const grpcServer = await startGrpcServer({
    host: settings.listenHost,
    port: settings.grpcPort,
    authz: createAuthzAdapter({ engine, reporter, now }),
    extProc: createExtProcSessionFactory({ engine, reporter, now }),
    logger,
    metrics,
  });
  const admin = await startAdminServer({
    host: settings.listenHost,
    port: settings.adminPort,
    metrics,
    isReady: () => !draining,
  });
  logger.info(
    { event: 'listening', grpc_port: grpcServer.port, admin_port: admin.port, policy: initial.name, policy_path: policyPath, rate_limit_backend: settings.redisUrl ? 'redis' : 'memory' },
    `genops-mesh serving gRPC on ${settings.listenHost}:${grpcServer.port}, admin on ${settings.listenHost}:${admin.port}`,
  );

  const shutdown = async (signal: string) => {
    if (draining) return;
    draining = true;
    logger.info({ event: 'draining', signal, timeout_ms: settings.drainTimeoutMs }, 'draining in-flight calls');
    store?.close();
    await grpcServer.drain(settings.drainTimeoutMs);
    await admin.close();
    logger.info({ event: 'stopped' }, 'stopped');
    logger.flush();
    process.exitCode = 0;
    setTimeout(() => process.exit(0), 200).unref();
  };
  process.once('SIGTERM', () => void shutdown('SIGTERM'));
  process.once('SIGINT', () => void shutdown('SIGINT'));
}

main().catch((error: unknown) => {
  const message = isGenopsError(error) ? error.message : error instanceof Error ? (error.stack ?? error.message) : String(error);
  process.stderr.write(`genops-mesh: ${message}\n`);
  process.exit(isGenopsError(error) ? 2 : 1);
});
