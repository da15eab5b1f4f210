import { get } from 'node:http';
import { startEnvoy, type RunningEnvoy } from '../../support/index.js';
import type { RunningIstiod } from './start-istiod.js';

/** The Istio version the proxies report (istiod gates features on it): the pinned module's. */
export const PROXY_ISTIO_VERSION = '1.31.0';

export interface IstioProxyOptions {
  readonly istiod: RunningIstiod;
  /** sidecar, or router for a gateway. */
  readonly type: 'sidecar' | 'router';
  /** The pod's IP: istiod finds the proxy's workload (WorkloadEntry) by it. A 127.0.0.0/8 address. */
  readonly ip: string;
  readonly pod: string;
  readonly namespace: string;
  readonly serviceAccount: string;
  readonly labels: Readonly<Record<string, string>>;
}

export interface IstioProxy {
  readonly envoy: RunningEnvoy;
  /** The listeners istiod sent (Envoy admin /config_dump, dynamic active listeners). */
  listeners(): Promise<EnvoyListener[]>;
  /** How many listener updates Envoy accepted from istiod so far (listener_manager.lds.update_success). */
  listenerUpdates(): Promise<number>;
  stop(): Promise<number | null>;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type EnvoyListener = Record<string, any> & { name: string };

function adminGet(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    get(url, { agent: false, timeout: 5_000 }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
      response.on('error', reject);
    }).on('error', reject);
  });
}

/**
 * Boots the stock Envoy on deploy/envoy/istio-proxy.yaml as an Istio proxy of the given pod,
 * connected to istiod over ADS, and waits until it has its first configuration.
 */
export async function startIstioProxy(options: IstioProxyOptions): Promise<IstioProxy> {
  const { istiod } = options;
  const envoy = await startEnvoy({
    config: 'deploy/envoy/istio-proxy.yaml',
    vars: {
      NODE_ID: `${options.type}~${options.ip}~${options.pod}.${options.namespace}~${options.namespace}.svc.cluster.local`,
      NODE_CLUSTER: `${options.pod}.${options.namespace}`,
      NAMESPACE: options.namespace,
      SERVICE_ACCOUNT: options.serviceAccount,
      LABELS: JSON.stringify(options.labels),
      INSTANCE_IP: options.ip,
      INTERCEPTION_MODE: 'NONE',
      ISTIO_VERSION: PROXY_ISTIO_VERSION,
      XDS_HOST: istiod.xds.host,
      XDS_PORT: istiod.xds.port,
      SDS_HOST: istiod.sds.host,
      SDS_PORT: istiod.sds.port,
    },
    readyTimeoutMs: 30_000,
  });
  return {
    envoy,
    listeners: async () => {
      const text = await adminGet(`${envoy.adminUrl}/config_dump?resource=dynamic_listeners`);
      // Envoy answers in plain text when it has accepted no listener at all.
      if (!text.startsWith('{')) throw new Error(`${options.pod}: no listeners from istiod (${text.trim().slice(0, 200)}):\n${envoy.process.stderrTail().slice(-2000)}`);
      const dump = JSON.parse(text) as { configs: { name: string; active_state?: { listener: EnvoyListener } }[] };
      return dump.configs.flatMap((entry) => (entry.active_state ? [entry.active_state.listener] : []));
    },
    listenerUpdates: async () => {
      const stats = await adminGet(`${envoy.adminUrl}/stats?filter=^listener_manager\\.lds\\.update_success$`);
      return Number(/: (\d+)/.exec(stats)?.[1] ?? Number.NaN);
    },
    stop: () => envoy.stop(),
  };
}

/** The HTTP filters of every HTTP connection manager in a listener, in order. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function httpFilters(listener: EnvoyListener): Record<string, any>[] {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  return (listener.filter_chains ?? []).flatMap((chain: Record<string, any>) =>
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    (chain.filters ?? []).flatMap((filter: Record<string, any>) => (filter.name === 'envoy.filters.network.http_connection_manager' ? filter.typed_config.http_filters : [])),
  );
}
