import { existsSync } from 'node:fs';
import { freePort } from './free-port.js';
import { jsonLines, spawnManaged, waitUntilReady, type ManagedProcess } from './managed-process.js';
import { SERVICE_NODE_FLAGS } from '../server/service-node-flags.js';
import { SERVICE_ENTRY } from './repo-root.js';

export interface StartServiceOptions {
  /** Policy YAML (GENOPS_POLICY); the embedded default policy when absent. */
  readonly policyPath?: string;
  /** Extra environment, applied last (e.g. LOG_LEVEL). */
  readonly env?: Readonly<Record<string, string>>;
  readonly host?: string;
  readonly readyTimeoutMs?: number;
  /** Node flags after SERVICE_NODE_FLAGS, e.g. --trace-gc-nvp (the bench; most V8 flags are refused in NODE_OPTIONS). */
  readonly nodeFlags?: readonly string[];
}

export interface RunningService {
  readonly host: string;
  readonly grpcPort: number;
  readonly adminPort: number;
  readonly adminUrl: string;
  readonly process: ManagedProcess;
  /** stdout lines that are JSON (the service's structured log), parsed, in order. */
  logs(): Record<string, unknown>[];
  /** SIGTERM (or `signal`), then waits for the exit; returns the exit code. */
  stop(options?: { signal?: NodeJS.Signals; timeoutMs?: number }): Promise<number | null>;
}

/**
 * Spawns `node <SERVICE_NODE_FLAGS> dist/main.js` on free loopback ports and waits until /readyz
 * answers 200. GENOPS_* settings of the calling shell are not inherited, so
 * the service runs exactly what the caller asked for.
 */
export async function startService(options: StartServiceOptions = {}): Promise<RunningService> {
  if (!existsSync(SERVICE_ENTRY)) {
    throw new Error(`${SERVICE_ENTRY} does not exist: build the service first (npm run build)`);
  }
  const host = options.host ?? '127.0.0.1';
  const [grpcPort, adminPort] = [await freePort(host), await freePort(host)];
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.startsWith('GENOPS_') && !key.startsWith('OTEL_')) env[key] = value;
  }
  Object.assign(env, {
    GENOPS_LISTEN_HOST: host,
    GENOPS_GRPC_PORT: String(grpcPort),
    GENOPS_ADMIN_PORT: String(adminPort),
    LOG_LEVEL: 'info',
    OTEL_SDK_DISABLED: 'true',
    ...(options.policyPath ? { GENOPS_POLICY: options.policyPath } : {}),
    ...options.env,
  });
  const child = spawnManaged('genops-mesh', process.execPath, [...SERVICE_NODE_FLAGS, ...(options.nodeFlags ?? []), SERVICE_ENTRY], env);
  const adminUrl = `http://${host}:${adminPort}`;
  try {
    await waitUntilReady(child, `${adminUrl}/readyz`, options.readyTimeoutMs ?? 15_000);
  } catch (error) {
    await child.stop({ signal: 'SIGKILL' }).catch(() => undefined);
    throw error;
  }
  return {
    host,
    grpcPort,
    adminPort,
    adminUrl,
    process: child,
    logs: () => jsonLines(child.stdoutLines),
    stop: (stopOptions) => child.stop(stopOptions),
  };
}
