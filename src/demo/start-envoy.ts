import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, isAbsolute, join } from 'node:path';
import { parse, stringify } from 'yaml';
import { findEnvoy } from './find-envoy.js';
import { freePort } from './free-port.js';
import { jsonLines, spawnManaged, waitUntilReady, type ManagedProcess } from './managed-process.js';
import { renderEnvoyConfig, type EnvoyConfigVars } from './render-envoy-config.js';
import { REPO_ROOT } from './repo-root.js';

export interface StartEnvoyOptions {
  /** A config template with ${...} placeholders, relative to the repository root or absolute. */
  readonly config: string;
  /**
   * Placeholder values. LISTENER_HOST, GENOPS_HOST and UPSTREAM_HOST default
   * to 127.0.0.1; LISTENER_PORT and ADMIN_PORT to free ports; the rest are required.
   */
  readonly vars: EnvoyConfigVars;
  readonly logLevel?: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'critical' | 'off';
  /** Serve the listener over mTLS (client certificate required), as a mesh sidecar would. */
  readonly downstreamTls?: DownstreamTls;
  readonly readyTimeoutMs?: number;
  /** Envoy worker threads (default 1); each opens its own connections to every upstream. */
  readonly concurrency?: number;
}

/** PEM file paths for a listener that requires a client certificate signed by `trustedCa`. */
export interface DownstreamTls {
  readonly certificateChain: string;
  readonly privateKey: string;
  readonly trustedCa: string;
}

export interface RunningEnvoy {
  /** http(s)://LISTENER_HOST:LISTENER_PORT, where clients send requests. */
  readonly url: string;
  readonly listenerPort: number;
  readonly adminUrl: string;
  /** The rendered config Envoy runs (deleted on stop). */
  readonly configPath: string;
  readonly process: ManagedProcess;
  /** Envoy's stdout lines (the configs' JSON access log), parsed. */
  accessLog(): Record<string, unknown>[];
  stop(): Promise<number | null>;
}

/**
 * Renders an Envoy config template into a temporary file and boots the real
 * Envoy on it (one worker thread, its own shared-memory base id so several
 * can run side by side), then waits for the admin /ready endpoint.
 * Throws when Envoy is not installed: a caller never skips.
 */
export async function startEnvoy(options: StartEnvoyOptions): Promise<RunningEnvoy> {
  // A free port can be taken by another process between being picked and being bound (parallel
  // test files): when Envoy could not bind a port it was given none of, pick new ones and retry.
  for (let attempt = 1; ; attempt++) {
    try {
      return await startEnvoyOnce(options);
    } catch (error) {
      const portsChosenHere = options.vars.LISTENER_PORT === undefined || options.vars.ADMIN_PORT === undefined;
      if (attempt >= 3 || !portsChosenHere || !/Address already in use/.test(String((error as Error).message))) throw error;
    }
  }
}

async function startEnvoyOnce(options: StartEnvoyOptions): Promise<RunningEnvoy> {
  const envoy = findEnvoy();
  const templatePath = isAbsolute(options.config) ? options.config : join(REPO_ROOT, options.config);
  const vars: Record<string, string | number> = {
    LISTENER_HOST: '127.0.0.1',
    GENOPS_HOST: '127.0.0.1',
    UPSTREAM_HOST: '127.0.0.1',
    ...options.vars,
  };
  vars.LISTENER_PORT ??= await freePort(String(vars.LISTENER_HOST));
  vars.ADMIN_PORT ??= await freePort();
  let rendered = renderEnvoyConfig(readFileSync(templatePath, 'utf8'), vars, templatePath);
  if (options.downstreamTls) rendered = withDownstreamTls(rendered, options.downstreamTls);
  const dir = mkdtempSync(join(tmpdir(), 'genops-envoy-'));
  const configPath = join(dir, basename(templatePath));
  writeFileSync(configPath, rendered);

  const child = spawnManaged(
    'envoy',
    envoy,
    ['-c', configPath, '--use-dynamic-base-id', '--concurrency', String(options.concurrency ?? 1), '--log-level', options.logLevel ?? 'warn', '--drain-time-s', '0'],
    process.env,
  );
  const adminUrl = `http://127.0.0.1:${vars.ADMIN_PORT}`;
  const stop = async () => {
    try {
      return await child.stop();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
  try {
    await waitUntilReady(child, `${adminUrl}/ready`, options.readyTimeoutMs ?? 20_000);
  } catch (error) {
    await stop().catch(() => undefined);
    throw error;
  }
  return {
    url: `${options.downstreamTls ? 'https' : 'http'}://${vars.LISTENER_HOST}:${vars.LISTENER_PORT}`,
    listenerPort: Number(vars.LISTENER_PORT),
    adminUrl,
    configPath,
    process: child,
    accessLog: () => jsonLines(child.stdoutLines),
    stop,
  };
}

/** Adds a TLS transport socket that requires a client certificate to every listener filter chain. */
function withDownstreamTls(rendered: string, tls: DownstreamTls): string {
  const config = parse(rendered) as { static_resources?: { listeners?: { filter_chains?: Record<string, unknown>[] }[] } };
  for (const listener of config.static_resources?.listeners ?? []) {
    for (const chain of listener.filter_chains ?? []) {
      chain.transport_socket = {
        name: 'envoy.transport_sockets.tls',
        typed_config: {
          '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext',
          require_client_certificate: true,
          common_tls_context: {
            tls_certificates: [{ certificate_chain: { filename: tls.certificateChain }, private_key: { filename: tls.privateKey } }],
            validation_context: { trusted_ca: { filename: tls.trustedCa } },
          },
        },
      };
    }
  }
  return stringify(config);
}
