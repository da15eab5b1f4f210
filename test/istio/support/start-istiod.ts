import { spawnManaged, type ManagedProcess } from '../../../src/demo/managed-process.js';
import { findIstiodHarness } from './istio-tools.js';

export interface StartIstiodOptions {
  /** IstioOperator YAML whose spec.meshConfig istiod runs with. */
  readonly meshConfig: string;
  /** Directories of Istio resources; edits to their files are pushed to the proxies. */
  readonly configDirs: readonly string[];
  /** PEM CA certificate and key that sign the proxies' workload certificates. */
  readonly caCert: string;
  readonly caKey: string;
  readonly readyTimeoutMs?: number;
}

export interface RunningIstiod {
  /** Plaintext xDS (ADS), host:port on loopback. */
  readonly xds: { host: string; port: number };
  /** Workload certificates (SDS), host:port on loopback. */
  readonly sds: { host: string; port: number };
  readonly process: ManagedProcess;
  stop(): Promise<number | null>;
}

/**
 * Istio feature flags (istiod environment) that keep istiod from configuring filters only
 * Istio's own Envoy build has: the ALPN override filter and metadata exchange (both only feed
 * Istio's telemetry). Everything genops-mesh relies on is stock Envoy.
 */
export const STOCK_ENVOY_FEATURE_FLAGS = {
  PILOT_ENABLE_ALPN_FILTER: 'false',
  PILOT_ENABLE_METADATA_EXCHANGE: 'false',
} as const;

const hostPort = (address: string) => {
  const at = address.lastIndexOf(':');
  return { host: address.slice(0, at), port: Number(address.slice(at + 1)) };
};

/** Starts the istiod harness (test/istio/istiod) and waits until it serves xDS. */
export async function startIstiod(options: StartIstiodOptions): Promise<RunningIstiod> {
  const args = ['--mesh-config', options.meshConfig, '--ca-cert', options.caCert, '--ca-key', options.caKey, ...options.configDirs.flatMap((dir) => ['--config-dir', dir])];
  const child = spawnManaged('istiod', findIstiodHarness(), args, { ...process.env, ...STOCK_ENVOY_FEATURE_FLAGS });
  const deadline = Date.now() + (options.readyTimeoutMs ?? 30_000);
  while (!child.stdoutLines.some((line) => line.startsWith('{'))) {
    if (child.exitCode !== undefined) throw new Error(`istiod exited with code ${child.exitCode} before it was ready:\n${child.stderrTail()}`);
    if (Date.now() > deadline) {
      await child.stop({ signal: 'SIGKILL' }).catch(() => undefined);
      throw new Error(`istiod was not ready within ${options.readyTimeoutMs ?? 30_000} ms:\n${child.stderrTail()}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const ready = JSON.parse(child.stdoutLines.find((line) => line.startsWith('{'))!) as { xds: string; sds: string };
  return { xds: hostPort(ready.xds), sds: hostPort(ready.sds), process: child, stop: () => child.stop() };
}
