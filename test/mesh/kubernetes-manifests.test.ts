/**
 * The kustomize base and overlays, rendered by the real kustomize (kubectl's,
 * or a standalone one), checked for what a platform engineer relies on, and
 * cross-checked against the Envoy configs the other mesh tests boot.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { promisify } from 'node:util';
import { parse } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadPolicyFile } from '../../src/policy/policy-store.js';
import { findEnvoy, renderEnvoyConfig, REPO_ROOT } from '../support/index.js';
import { all, find, kustomize, type KubeObject } from './support/kube-tools.js';
import { containerOf, envOf, expectGovernanceDeployment, expectGovernanceService, expectSharedStore } from './support/manifest-expectations.js';

const read = (path: string) => readFileSync(join(REPO_ROOT, path), 'utf8');
const OVERLAYS = ['standalone', 'istio', 'linkerd', 'consul'] as const;
type Overlay = (typeof OVERLAYS)[number];
const HEADERS = ['team', 'project', 'customer-id', 'customer-tier', 'cost-center', 'environment', 'feature', 'model', 'route', 'decision-id'];

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Loose = Record<string, any>;
/** The http_filters of one listener of an Envoy config under deploy/envoy. */
function envoyFilter(path: string, listener: string, filter: string): Loose {
  const config = parse(renderEnvoyConfig(read(path), new Proxy({}, { get: () => '1' }) as Record<string, string>)) as Loose;
  const found = config.static_resources.listeners.find((candidate: Loose) => candidate.name === listener);
  const hcm = found.filter_chains[0].filters.find((candidate: Loose) => candidate.name === 'envoy.filters.network.http_connection_manager');
  return hcm.typed_config.http_filters.find((candidate: Loose) => candidate.name === filter);
}

describe('Kubernetes manifests (kustomize)', () => {
  const rendered = new Map<Overlay, KubeObject[]>();
  beforeAll(async () => {
    for (const overlay of OVERLAYS) rendered.set(overlay, await kustomize(`deploy/kubernetes/overlays/${overlay}`));
  });
  const objects = (overlay: Overlay) => rendered.get(overlay)!;

  describe.each(OVERLAYS)('overlay %s', (overlay) => {
    it('renders the hardened Deployment, the gRPC Service, ServiceAccount, policy ConfigMap, PDB and HPA in namespace genops', () => {
      const list = objects(overlay);
      expectGovernanceDeployment(find(list, 'Deployment', 'genops-mesh'), { probe: overlay === 'consul' ? 'http' : 'grpc', policyConfigMap: 'genops-mesh-policy' });
      expectGovernanceService(find(list, 'Service', 'genops-mesh'));
      expect(find(list, 'ServiceAccount', 'genops-mesh').automountServiceAccountToken).toBe(false);
      expect(find(list, 'Deployment', 'genops-mesh').spec.template.spec.serviceAccountName).toBe('genops-mesh');
      expect(find(list, 'PodDisruptionBudget', 'genops-mesh').spec).toMatchObject({ minAvailable: 1, selector: { matchLabels: { app: 'genops-mesh' } } });
      expect(find(list, 'HorizontalPodAutoscaler', 'genops-mesh').spec).toMatchObject({ scaleTargetRef: { kind: 'Deployment', name: 'genops-mesh' }, minReplicas: 2 });
      expect(find(list, 'Namespace', 'genops')).toBeDefined();
      // /budgets answers only the token in the optional Secret genops-mesh-admin; without it the endpoint is off.
      expect(envOf(containerOf(find(list, 'Deployment', 'genops-mesh'))).GENOPS_ADMIN_TOKEN).toEqual({ secretKeyRef: { name: 'genops-mesh-admin', key: 'token', optional: true } });
      const base = ['Deployment', 'Service', 'ServiceAccount', 'ConfigMap', 'PodDisruptionBudget', 'HorizontalPodAutoscaler', 'StatefulSet', 'Secret', 'NetworkPolicy'];
      for (const object of list.filter((candidate) => base.includes(candidate.kind))) expect(object.metadata.namespace, `${object.kind}/${object.metadata.name}`).toBe('genops');
      expect(containerOf(find(list, 'Deployment', 'genops-mesh')).image).toBe('genops-mesh:0.1.0');
    });

    it('ships the shared store (Redis-compatible, noeviction, password from a Secret) and points every replica at it', () => {
      expectSharedStore(objects(overlay), { store: 'genops-redis', secret: 'genops-redis', genopsPods: { app: 'genops-mesh' } });
    });

    it('ships the default policy, which the service loads', () => {
      const policy = find(objects(overlay), 'ConfigMap', 'genops-mesh-policy').data['policy.yaml'] as string;
      expect(policy).toBe(read('deploy/default-policy.yaml'));
      const dir = mkdtempSync(join(tmpdir(), 'genops-k8s-policy-'));
      try {
        writeFileSync(join(dir, 'policy.yaml'), policy);
        expect(loadPolicyFile(join(dir, 'policy.yaml')).name).toBe('default');
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });

  it('an overlay replaces the placeholder store password, and both the store and the service read the new one', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'genops-k8s-overlay-'));
    try {
      writeFileSync(join(dir, 'kustomization.yaml'), [
        'apiVersion: kustomize.config.k8s.io/v1beta1',
        'kind: Kustomization',
        `resources: [${relative(dir, join(REPO_ROOT, 'deploy/kubernetes/overlays/standalone'))}]`,
        'secretGenerator:',
        '  - { name: genops-redis, behavior: replace, literals: [password=s3cret-from-overlay] }',
      ].join('\n'));
      const list = await kustomize(relative(REPO_ROOT, dir));
      const secrets = all(list, 'Secret');
      expect(secrets).toHaveLength(1);
      expect(Buffer.from(secrets[0]!.data.password, 'base64').toString()).toBe('s3cret-from-overlay');
      expectSharedStore(list, { store: 'genops-redis', secret: secrets[0]!.metadata.name, genopsPods: { app: 'genops-mesh' } });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const shipped = all(objects('standalone'), 'Secret')[0]!;
    expect(Buffer.from(shipped.data.password, 'base64').toString(), 'the base ships an obvious placeholder').toBe('change-me-in-your-overlay');
  });

  it('standalone: opts the pods out of every mesh', () => {
    const template = find(objects('standalone'), 'Deployment', 'genops-mesh').spec.template;
    expect(template.metadata.labels['sidecar.istio.io/inject']).toBe('false');
    expect(template.metadata.annotations).toMatchObject({ 'linkerd.io/inject': 'disabled', 'consul.hashicorp.com/connect-inject': 'false' });
  });

  describe('istio', () => {
    const meshConfig = () => parse(read('deploy/istio/mesh-config.yaml')) as Loose;

    it('injects the sidecar and enforces mTLS in the namespace', () => {
      const list = objects('istio');
      expect(find(list, 'Namespace', 'genops').metadata.labels?.['istio-injection']).toBe('enabled');
      expect(find(list, 'Deployment', 'genops-mesh').spec.template.metadata.labels['sidecar.istio.io/inject']).toBe('true');
      expect(find(list, 'PeerAuthentication', 'default').spec.mtls.mode).toBe('STRICT');
    });

    it('registers the service as an envoyExtAuthzGrpc provider that fails closed (test/istio boots a real istiod on it)', () => {
      const provider = meshConfig().spec.meshConfig.extensionProviders.find((candidate: Loose) => candidate.envoyExtAuthzGrpc);
      expect(provider).toMatchObject({ name: 'genops-mesh', envoyExtAuthzGrpc: { service: 'genops-mesh.genops.svc.cluster.local', port: 9001, failOpen: false, statusOnError: '503' } });
      const service = find(objects('istio'), 'Service', 'genops-mesh');
      expect(provider.envoyExtAuthzGrpc.service).toBe(`${service.metadata.name}.${service.metadata.namespace}.svc.cluster.local`);
      expect(service.spec.ports.map((port: Loose) => port.port)).toContain(provider.envoyExtAuthzGrpc.port);
    });

    it('governs at the gateway and, for calls not from it, at labeled workloads (action CUSTOM)', () => {
      const policies = all(objects('istio'), 'AuthorizationPolicy');
      expect(policies).toHaveLength(2);
      for (const policy of policies) expect(policy.spec).toMatchObject({ action: 'CUSTOM', provider: { name: 'genops-mesh' } });
      const gateway = find(policies, 'AuthorizationPolicy', 'genops-governance-gateway');
      expect(gateway.metadata.namespace).toBe('istio-system');
      expect(gateway.spec.selector.matchLabels).toEqual({ istio: 'ingressgateway' });
      const workloads = find(policies, 'AuthorizationPolicy', 'genops-governance');
      expect(workloads.spec.selector.matchLabels).toEqual({ 'genops.ai/governance': 'ext-authz' });
      expect(workloads.spec.rules[0]).toEqual({
        to: [{ operation: { paths: ['/v1/*'] } }],
        when: [{ key: 'request.headers[x-forwarded-client-cert]', notValues: ['*;URI=spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account'] }],
      });
      // That rule trusts x-forwarded-client-cert, which only an mTLS connection makes trustworthy: the governed workloads take no plaintext.
      const strict = find(objects('istio'), 'PeerAuthentication', 'genops-governance-strict');
      expect(strict.spec).toEqual({ selector: { matchLabels: { 'genops.ai/governance': 'ext-authz' } }, mtls: { mode: 'STRICT' } });
      // The gateway re-routes after the decision (istiod does not turn meshConfig clearRouteCache into Envoy config).
      const routeCache = find(objects('istio'), 'EnvoyFilter', 'genops-gateway-route-cache');
      expect(routeCache.metadata.namespace).toBe('istio-system');
      expect(routeCache.spec.configPatches[0]).toMatchObject({ match: { context: 'GATEWAY' }, patch: { operation: 'MERGE', value: { typed_config: { clear_route_cache: true } } } });
    });

    it('tags the proxies\' spans with every governance header', () => {
      for (const telemetry of all(objects('istio'), 'Telemetry')) {
        const tags = telemetry.spec.tracing[0].customTags as Record<string, { header: { name: string } }>;
        for (const header of HEADERS) expect(tags[`genops.${header.replace('-', '_')}`]?.header.name).toBe(`x-genops-${header}`);
        expect(telemetry.spec.tracing[0].providers[0].name).toBe(meshConfig().spec.meshConfig.extensionProviders.find((candidate: Loose) => candidate.opentelemetry).name);
      }
    });

    it('routes on x-genops-route to the subsets of every route the default policy chooses, hashing on the customer id', () => {
      const policy = parse(read('deploy/default-policy.yaml')) as Loose;
      const routes = new Set<string>([...Object.values(policy.spec.routes.byTier as Record<string, string>), policy.spec.routes.default]);
      const virtualService = find(objects('istio'), 'VirtualService', 'ai-inference-routing');
      const rule = find(objects('istio'), 'DestinationRule', 'ai-inference');
      const subsets = new Set((rule.spec.subsets as Loose[]).map((subset) => subset.name));
      for (const route of routes) {
        expect(subsets.has(route), `subset ${route}`).toBe(true);
        const http = (virtualService.spec.http as Loose[]).find((candidate) => candidate.route[0].destination.subset === route);
        expect(http, `a VirtualService route to ${route}`).toBeDefined();
        if (route !== policy.spec.routes.default) expect(http!.match[0].headers['x-genops-route']).toEqual({ exact: route });
      }
      // The last route has no match: requests without a route land on the default subset.
      const last = (virtualService.spec.http as Loose[]).at(-1)!;
      expect(last.match).toBeUndefined();
      expect(last.route[0].destination.subset).toBe(policy.spec.routes.default);
      expect(JSON.stringify(virtualService.spec)).not.toContain('x-genops-customer-tier');
      expect(rule.spec.trafficPolicy.loadBalancer.consistentHash).toEqual({ httpHeaderName: 'x-genops-customer-id' });
    });

    it('inserts ext_proc before the router of labeled sidecars, and of the gateway from its own namespace', async () => {
      const filters = await kustomize('deploy/istio/ext-proc');
      expect(filters.map((filter) => [filter.kind, filter.metadata.namespace])).toEqual([['EnvoyFilter', 'genops'], ['EnvoyFilter', 'istio-system']]);
      const [sidecarPatches, gatewayPatches] = filters.map((filter) => filter.spec.configPatches as Loose[]);
      expect(sidecarPatches!.map((patch) => patch.match.context)).toEqual(['SIDECAR_INBOUND', 'SIDECAR_INBOUND', 'SIDECAR_INBOUND', 'SIDECAR_INBOUND']);
      expect(gatewayPatches!.map((patch) => patch.match.context)).toEqual(['GATEWAY', 'GATEWAY', 'GATEWAY', 'GATEWAY']);
      // One round trip: the undecided route first in the generated routes, with the plain-Envoy config's matchers
      // and per-route mode (test/istio/istio-one-round-trip.test.ts runs them through istiod).
      for (const patches of [sidecarPatches!, gatewayPatches!]) {
        expect(patches.slice(2).map((patch) => [patch.applyTo, patch.patch.operation])).toEqual([['HTTP_ROUTE', 'INSERT_FIRST'], ['HTTP_ROUTE', 'MERGE']]);
        expect(patches[2]!.patch.value).toMatchObject({ name: 'genops-undecided', route: { cluster: 'BlackHoleCluster', idle_timeout: '2s' } });
        expect(patches[2]!.patch.value.match.headers).toContainEqual({ name: ':path', string_match: { prefix: '/v1/' } });
      }
      expect(filters[1]!.spec.workloadSelector.matchLabels ?? filters[1]!.spec.workloadSelector.labels).toEqual({ istio: 'ingressgateway', 'genops.ai/governance': 'ext-proc' });
      const [sidecar, sidecarMetering] = sidecarPatches as [Loose, Loose];
      const [gateway, gatewayMetering] = gatewayPatches as [Loose, Loose];
      // Observed metering (the base ships Redis): the deciding filter hands event streams over...
      for (const patch of [sidecar, gateway]) {
        expect(patch.patch.value.typed_config.extension_config.typed_config).toMatchObject({ grpc_service: { initial_metadata: [{ key: 'x-genops-metering', value: 'streams' }] }, metadata_options: { receiving_namespaces: { untyped: ['genops'] } } });
      }
      // ...to the genops.metering filter inserted right before it, in observability_mode, for event streams only.
      for (const patch of [sidecarMetering, gatewayMetering]) {
        expect(patch).toMatchObject({ applyTo: 'HTTP_FILTER', match: { listener: { filterChain: { filter: { subFilter: { name: 'envoy.filters.http.ext_proc' } } } } }, patch: { operation: 'INSERT_BEFORE', value: { name: 'genops.metering' } } });
        expect(patch.patch.value.typed_config.extension_config.typed_config).toMatchObject({ observability_mode: true, failure_mode_allow: true, processing_mode: { response_body_mode: 'STREAMED' }, metadata_options: { forwarding_namespaces: { untyped: ['genops'] } } });
        expect(JSON.stringify(patch.patch.value.typed_config.xds_matcher)).toContain('text/event-stream');
      }
      const extProc = [sidecar, gateway].map((patch) => {
        expect(patch).toMatchObject({ applyTo: 'HTTP_FILTER', match: { listener: { filterChain: { filter: { subFilter: { name: 'envoy.filters.http.router' } } } } }, patch: { operation: 'INSERT_BEFORE' } });
        return patch.patch.value.typed_config.extension_config;
      });
      // One ext_proc config, wrapped in matchers that skip it outside /v1/ (and, at sidecars, for calls from the gateway).
      expect(extProc[0]).toEqual(extProc[1]);
      expect(extProc[0].typed_config).toMatchObject({ failure_mode_allow: false, grpc_service: { envoy_grpc: { cluster_name: 'outbound|9001||genops-mesh.genops.svc.cluster.local' } } });
    });
  });

  describe('linkerd', () => {
    it('meshes the service and its namespace', () => {
      const list = objects('linkerd');
      expect(find(list, 'Namespace', 'genops').metadata.annotations?.['linkerd.io/inject']).toBe('enabled');
      expect(find(list, 'Deployment', 'genops-mesh').spec.template.metadata.annotations['linkerd.io/inject']).toBe('enabled');
    });

    it('adds a meshed Envoy gateway whose config is deploy/envoy/ext-authz.yaml rendered for the cluster, and valid', async () => {
      const list = objects('linkerd');
      const gateway = find(list, 'Deployment', 'genops-gateway');
      expect(gateway.spec.template.metadata.annotations['linkerd.io/inject']).toBe('enabled');
      expect(gateway.spec.template.spec.containers[0].image).toMatch(/^envoyproxy\/envoy:v1\.40\./);
      const configMapName = gateway.spec.template.spec.volumes[0].configMap.name as string;
      const envoyYaml = find(list, 'ConfigMap', configMapName).data['envoy.yaml'] as string;
      const template = read('deploy/envoy/ext-authz.yaml').replace(/^(#.*\n)+/, '');
      const vars = { LISTENER_HOST: '0.0.0.0', LISTENER_PORT: 10000, ADMIN_PORT: 9901, GENOPS_HOST: 'genops-mesh.genops.svc.cluster.local', GENOPS_PORT: 9001, UPSTREAM_HOST: 'ai-inference.genops.svc.cluster.local', UPSTREAM_PORT: 8080 };
      expect(envoyYaml.replace(/^(#.*\n)+/, ''), 'deploy/linkerd/gateway/envoy.yaml is stale: run scripts/render-gateway-config.sh').toBe(renderEnvoyConfig(template, vars));
      expect(find(list, 'Service', 'genops-gateway').spec.ports[0].port).toBe(10000);

      const dir = mkdtempSync(join(tmpdir(), 'genops-gateway-'));
      try {
        writeFileSync(join(dir, 'envoy.yaml'), envoyYaml);
        const { stdout } = await promisify(execFile)(findEnvoy(), ['--mode', 'validate', '-c', join(dir, 'envoy.yaml'), '--log-level', 'error']);
        expect(stdout).toContain('OK');
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });

    it('ships ingress-nginx and Traefik examples pointing at the forward-auth endpoints', () => {
      const nginx = parse(read('deploy/linkerd/ingress/ingress-nginx.yaml')) as Loose;
      expect(nginx.metadata.annotations['nginx.ingress.kubernetes.io/auth-url']).toBe('http://genops-mesh.genops.svc.cluster.local:9002/forward-auth/nginx');
      expect(nginx.metadata.annotations['nginx.ingress.kubernetes.io/auth-response-headers'].split(',').sort()).toEqual(HEADERS.map((header) => `x-genops-${header}`).sort());
      const [middleware] = read('deploy/linkerd/ingress/traefik.yaml').split(/^---$/m).map((document) => parse(document) as Loose);
      expect(middleware!.spec.forwardAuth.address).toBe('http://genops-mesh.genops.svc.cluster.local:9002/forward-auth');
      expect([...middleware!.spec.forwardAuth.authResponseHeaders].sort()).toEqual(HEADERS.map((header) => `x-genops-${header}`).sort());
    });
  });

  describe('consul', () => {
    it('meshes the service with its admin port outside the sidecar, probing /readyz', () => {
      const template = find(objects('consul'), 'Deployment', 'genops-mesh').spec.template;
      expect(template.metadata.annotations).toMatchObject({ 'consul.hashicorp.com/connect-inject': 'true', 'consul.hashicorp.com/connect-service-port': '9001', 'consul.hashicorp.com/transparent-proxy-exclude-inbound-ports': '9464' });
      // The store is no Consul service: the transparent proxy lets the service reach it directly, and it is never injected.
      expect(template.metadata.annotations['consul.hashicorp.com/transparent-proxy-exclude-outbound-ports']).toBe('6379');
      expect(find(objects('consul'), 'StatefulSet', 'genops-redis').spec.template.metadata.annotations).toEqual({ 'consul.hashicorp.com/connect-inject': 'false' });
    });

    it('declares gRPC, allows the governed service, and attaches builtin/ext-authz failing closed, as the booted config does', () => {
      const list = objects('consul');
      const defaults = all(list, 'ServiceDefaults');
      expect(find(defaults, 'ServiceDefaults', 'genops-mesh').spec.protocol).toBe('grpc');
      const governed = find(defaults, 'ServiceDefaults', 'ai-inference').spec;
      expect(governed.envoyExtensions).toHaveLength(1);
      const extension = governed.envoyExtensions[0];
      expect(extension).toMatchObject({ name: 'builtin/ext-authz', required: true, arguments: { proxyType: 'connect-proxy', config: { grpcService: { target: { service: { name: 'genops-mesh' } } }, statusOnError: 503, clearRouteCache: true } } });
      const intentions = find(list, 'ServiceIntentions', 'genops-mesh').spec;
      expect(intentions.sources).toEqual([{ name: 'ai-inference', action: 'allow' }, { name: '*', action: 'deny' }]);

      const booted = envoyFilter('deploy/envoy/consul-ext-authz.yaml', 'public_listener', 'envoy.filters.http.ext_authz').typed_config;
      expect(booted).toMatchObject({ failure_mode_allow: !extension.required, status_on_error: { code: 'ServiceUnavailable' }, clear_route_cache: extension.arguments.config.clearRouteCache, stat_prefix: 'response', grpc_service: { timeout: '0.25s' } });
      expect(booted.grpc_service.envoy_grpc.cluster_name).toMatch(/^genops-mesh\.default\.dc1\.internal\..+\.consul$/);
    });
  });

  afterAll(() => rendered.clear());
});
