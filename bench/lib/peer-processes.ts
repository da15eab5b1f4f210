import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../src/demo/free-port.js';
import { spawnManaged, waitUntilReady, type ManagedProcess } from '../../src/demo/managed-process.js';
import { REPO_ROOT } from '../../src/demo/repo-root.js';

/** Where scripts/build-peers.sh puts the peers (pinned there). */
export const OPA_ENVOY_BINARY = join(REPO_ROOT, '.tools/bin/opa-envoy-plugin');
export const RATELIMIT_BINARY = join(REPO_ROOT, '.tools/bin/ratelimit');
/** The Rego twin of bench/policy-peers.yaml. */
export const OPA_POLICY = join(REPO_ROOT, 'bench/opa/policy.rego');
/** envoyproxy/ratelimit's own config: domain genops, 100 requests a minute per customer. */
export const RATELIMIT_CONFIG = join(REPO_ROOT, 'bench/envoy/ratelimit-config.yaml');

export interface RunningPeer {
  /** The gRPC port Envoy (or a client) calls. */
  readonly grpcPort: number;
  /** HTTP endpoint with the peer's own Prometheus metrics, when it has one. */
  readonly metricsUrl: string | undefined;
  readonly process: ManagedProcess;
  stop(): Promise<void>;
}

function requireBinary(path: string, what: string): void {
  if (!existsSync(path)) throw new Error(`${path} is missing: run \`bash scripts/build-peers.sh\` (npm run bench does) to build ${what}`);
}

/**
 * The OPA Envoy plugin serving envoy.service.auth.v3.Authorization on a free
 * loopback port with `policy` (package envoy.authz, rule `result`). Decision
 * logs, telemetry and body parsing off: it does what genops-mesh does per
 * request with bench/policy-peers.yaml and nothing more. Ready when /health?plugins answers 200.
 */
export async function startOpaEnvoy(options: { policyPath?: string; binary?: string } = {}): Promise<RunningPeer> {
  const binary = options.binary ?? OPA_ENVOY_BINARY;
  requireBinary(binary, 'the OPA Envoy plugin');
  const [apiPort, diagnosticPort, grpcPort] = [await freePort(), await freePort(), await freePort()];
  const child = spawnManaged('opa-envoy-plugin', binary, [
    'run', '--server',
    `--addr=127.0.0.1:${apiPort}`,
    `--diagnostic-addr=127.0.0.1:${diagnosticPort}`,
    '--disable-telemetry',
    '--log-level=error',
    `--set=plugins.envoy_ext_authz_grpc.addr=127.0.0.1:${grpcPort}`,
    '--set=plugins.envoy_ext_authz_grpc.path=envoy/authz/result',
    // The policy reads no body: OPA need not parse the one Envoy sends (with_request_body).
    '--set=plugins.envoy_ext_authz_grpc.skip-request-body-parse=true',
    '--set=decision_logs.console=false',
    options.policyPath ?? OPA_POLICY,
  ], process.env);
  try {
    await waitUntilReady(child, `http://127.0.0.1:${diagnosticPort}/health?plugins`, 20_000);
  } catch (error) {
    await child.stop({ signal: 'SIGKILL' }).catch(() => undefined);
    throw error;
  }
  return {
    grpcPort,
    metricsUrl: `http://127.0.0.1:${diagnosticPort}/metrics`,
    process: child,
    stop: async () => void (await child.stop({ timeoutMs: 5_000 }).catch(() => undefined)),
  };
}

/**
 * envoyproxy/ratelimit on Redis (`redisUrl` host:port) with
 * bench/envoy/ratelimit-config.yaml. Its defaults bind 0.0.0.0 and expect
 * statsd and a unix socket to Redis: everything is set to loopback, TCP and
 * no statsd here (DESIGN §4). Ready when /healthcheck answers 200.
 */
export async function startRatelimit(options: { redisAddress: string; binary?: string; configPath?: string }): Promise<RunningPeer> {
  const binary = options.binary ?? RATELIMIT_BINARY;
  requireBinary(binary, 'envoyproxy/ratelimit');
  const runtimeRoot = mkdtempSync(join(tmpdir(), 'genops-ratelimit-'));
  mkdirSync(join(runtimeRoot, 'ratelimit/config'), { recursive: true });
  copyFileSync(options.configPath ?? RATELIMIT_CONFIG, join(runtimeRoot, 'ratelimit/config/config.yaml'));
  const [httpPort, grpcPort, debugPort] = [await freePort(), await freePort(), await freePort()];
  const child = spawnManaged('ratelimit', binary, [], {
    ...process.env,
    HOST: '127.0.0.1',
    PORT: String(httpPort),
    GRPC_HOST: '127.0.0.1',
    GRPC_PORT: String(grpcPort),
    DEBUG_HOST: '127.0.0.1',
    DEBUG_PORT: String(debugPort),
    USE_STATSD: 'false',
    LOG_LEVEL: 'error',
    BACKEND_TYPE: 'redis',
    REDIS_SOCKET_TYPE: 'tcp',
    REDIS_URL: options.redisAddress,
    RUNTIME_ROOT: runtimeRoot,
    RUNTIME_SUBDIRECTORY: 'ratelimit',
    RUNTIME_WATCH_ROOT: 'false',
    RUNTIME_IGNOREDOTFILES: 'true',
  });
  try {
    await waitUntilReady(child, `http://127.0.0.1:${httpPort}/healthcheck`, 20_000);
  } catch (error) {
    await child.stop({ signal: 'SIGKILL' }).catch(() => undefined);
    throw error;
  }
  return {
    grpcPort,
    metricsUrl: undefined,
    process: child,
    stop: async () => {
      await child.stop({ timeoutMs: 5_000 }).catch(() => undefined);
      rmSync(runtimeRoot, { recursive: true, force: true });
    },
  };
}

/**
 * Versions of the peers (their build stamps) and the CPU placement every
 * process of the run shares: none gets a taskset or nice of its own, so all
 * inherit the harness's affinity and nice value, read here from /proc.
 */
export function peerVersions(): Record<string, string> {
  const stamp = (name: string) => {
    try {
      return readFileSync(join(REPO_ROOT, `.tools/bin/${name}.version`), 'utf8').trim();
    } catch {
      return 'not built';
    }
  };
  let redis = 'unknown';
  try {
    redis = /v=([\d.]+)/.exec(execFileSync('redis-server', ['--version'], { encoding: 'utf8' }))?.[1] ?? 'unknown';
  } catch {
    // reported as unknown
  }
  let placement = 'unknown';
  try {
    const status = readFileSync('/proc/self/status', 'utf8');
    const stat = readFileSync('/proc/self/stat', 'utf8');
    const nice = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16];
    placement = `every process on CPUs ${/Cpus_allowed_list:\s+(\S+)/.exec(status)?.[1] ?? '?'} at nice ${nice} (inherited from the harness; no taskset or nice per process)`;
  } catch {
    // reported as unknown
  }
  return { 'opa-envoy-plugin': stamp('opa-envoy-plugin'), 'envoyproxy/ratelimit': stamp('ratelimit'), redis, placement };
}
