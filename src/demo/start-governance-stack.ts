import type { EnvoyConfigVars } from './render-envoy-config.js';
import { startEnvoy, type DownstreamTls, type RunningEnvoy } from './start-envoy.js';
import { startService, type RunningService } from './start-service.js';

/** The two ways Envoy calls genops-mesh, each with its config under deploy/envoy/. */
export type EnvoyMode = 'ext-authz' | 'ext-proc';

export const ENVOY_CONFIGS: Readonly<Record<EnvoyMode, string>> = {
  'ext-authz': 'deploy/envoy/ext-authz.yaml',
  'ext-proc': 'deploy/envoy/ext-proc.yaml',
};

export interface StartGovernanceStackOptions {
  readonly mode: EnvoyMode;
  /** Where Envoy's ai_upstream cluster points. */
  readonly upstreamPort: number;
  readonly upstreamHost?: string;
  readonly policyPath?: string;
  readonly serviceEnv?: Readonly<Record<string, string>>;
  readonly envoyLogLevel?: 'trace' | 'debug' | 'info' | 'warn' | 'error';
  /** Clients must present a certificate: its URI SAN is the principal the service sees. */
  readonly downstreamTls?: DownstreamTls;
  /** Another deploy/envoy config for the same mode (e.g. deploy/envoy/ext-authz-jwt.yaml), with its extra placeholders. */
  readonly config?: string;
  readonly envoyVars?: EnvoyConfigVars;
  /** Envoy worker threads (default 1). */
  readonly envoyConcurrency?: number;
}

export interface GovernanceStack {
  readonly mode: EnvoyMode;
  readonly service: RunningService;
  readonly envoy: RunningEnvoy;
  /** Envoy's listener: send AI requests here. */
  readonly url: string;
  /** Stops Envoy, then the service (if it still runs). */
  stop(): Promise<void>;
}

/** genops-mesh and a real Envoy in front of `upstreamPort`, wired with deploy/envoy/<mode>.yaml. */
export async function startGovernanceStack(options: StartGovernanceStackOptions): Promise<GovernanceStack> {
  const service = await startService({
    ...(options.policyPath ? { policyPath: options.policyPath } : {}),
    ...(options.serviceEnv ? { env: options.serviceEnv } : {}),
  });
  let envoy: RunningEnvoy;
  try {
    envoy = await startEnvoy({
      config: options.config ?? ENVOY_CONFIGS[options.mode],
      vars: {
        ...options.envoyVars,
        GENOPS_HOST: service.host,
        GENOPS_PORT: service.grpcPort,
        UPSTREAM_HOST: options.upstreamHost ?? '127.0.0.1',
        UPSTREAM_PORT: options.upstreamPort,
      },
      ...(options.envoyLogLevel ? { logLevel: options.envoyLogLevel } : {}),
      ...(options.downstreamTls ? { downstreamTls: options.downstreamTls } : {}),
      ...(options.envoyConcurrency ? { concurrency: options.envoyConcurrency } : {}),
    });
  } catch (error) {
    await service.stop().catch(() => undefined);
    throw error;
  }
  return {
    mode: options.mode,
    service,
    envoy,
    url: envoy.url,
    async stop() {
      const failures: unknown[] = [];
      await envoy.stop().catch((error: unknown) => failures.push(error));
      await service.stop().catch((error: unknown) => failures.push(error));
      if (failures.length > 0) throw new AggregateError(failures, 'stopping the governance stack failed');
    },
  };
}
