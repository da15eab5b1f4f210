/**
 * The Helm chart, through the real helm: `helm lint --strict` and
 * `helm template` for every mesh mode, and what each mode renders.
 */
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, renderEnvoyConfig } from '../support/index.js';
import { all, find, helm, parseObjects, type KubeObject } from './support/kube-tools.js';
import { argValue, containerOf, envOf, expectGovernanceDeployment, expectGovernanceService, expectSharedStore } from './support/manifest-expectations.js';

const CHART = 'deploy/helm/genops-mesh';
const MODES = ['none', 'istio', 'linkerd', 'consul'] as const;
type Mode = (typeof MODES)[number];
const read = (path: string) => readFileSync(join(REPO_ROOT, path), 'utf8');
const template = async (...set: string[]) => parseObjects(await helm(['template', 'genops-mesh', CHART, '--namespace', 'genops', ...set.flatMap((value) => ['--set', value])]));

describe('Helm chart deploy/helm/genops-mesh', () => {
  const rendered = new Map<Mode, KubeObject[]>();
  beforeAll(async () => {
    await Promise.all(MODES.map(async (mode) => rendered.set(mode, await template(`mesh.mode=${mode}`))));
  });

  it.each(MODES)('passes helm lint --strict in mode %s', async (mode) => {
    const output = await helm(['lint', CHART, '--strict', '--set', `mesh.mode=${mode}`]);
    expect(output).toContain('1 chart(s) linted, 0 chart(s) failed');
  });

  it('ships the default policy and the ext_authz Envoy config unchanged', () => {
    expect(read(`${CHART}/files/policy.yaml`)).toBe(read('deploy/default-policy.yaml'));
    expect(read(`${CHART}/files/envoy-ext-authz.yaml`), 'run scripts/render-gateway-config.sh').toBe(read('deploy/envoy/ext-authz.yaml'));
  });

  it('passes the /budgets token from the Secret an operator names, and leaves /budgets off without one', async () => {
    const env = (objects: KubeObject[]) => envOf(containerOf(find(objects, 'Deployment', 'genops-mesh')));
    expect(env(rendered.get('none')!).GENOPS_ADMIN_TOKEN).toBeUndefined();
    const withToken = await template('mesh.mode=none', 'adminToken.existingSecret=genops-admin');
    expect(env(withToken).GENOPS_ADMIN_TOKEN).toEqual({ secretKeyRef: { name: 'genops-admin', key: 'token' } });
  });

  describe.each(MODES)('mode %s', (mode) => {
    it('renders the hardened Deployment, Service, ServiceAccount, policy ConfigMap, PDB and HPA', () => {
      const objects = rendered.get(mode)!;
      const deployment = find(objects, 'Deployment', 'genops-mesh');
      expectGovernanceDeployment(deployment, { probe: mode === 'consul' ? 'http' : 'grpc', policyConfigMap: 'genops-mesh-policy' });
      expectGovernanceService(find(objects, 'Service', 'genops-mesh'));
      expect(find(objects, 'ConfigMap', 'genops-mesh-policy').data['policy.yaml']).toBe(read('deploy/default-policy.yaml'));
      expect(find(objects, 'PodDisruptionBudget', 'genops-mesh').spec.minAvailable).toBe(1);
      expect(find(objects, 'HorizontalPodAutoscaler', 'genops-mesh').spec).toMatchObject({ minReplicas: 2, maxReplicas: 10 });
      expect(deployment.spec.replicas, 'the HPA owns the replica count').toBeUndefined();
      expect(envOf(containerOf(deployment))).toMatchObject({ OTEL_SDK_DISABLED: 'true' });
      expectSharedStore(objects, { store: 'genops-mesh-redis', secret: 'genops-mesh-redis-auth', genopsPods: { 'app.kubernetes.io/name': 'genops-mesh', 'app.kubernetes.io/instance': 'genops-mesh' } });
    });
  });

  it('mode none: no mesh resources, pods opted out of injection', () => {
    const objects = rendered.get('none')!;
    expect(new Set(objects.map((object) => object.kind))).toEqual(new Set(['ServiceAccount', 'ConfigMap', 'Service', 'Deployment', 'HorizontalPodAutoscaler', 'PodDisruptionBudget', 'StatefulSet', 'Secret', 'NetworkPolicy']));
    const metadata = find(objects, 'Deployment', 'genops-mesh').spec.template.metadata;
    expect(metadata.labels['sidecar.istio.io/inject']).toBe('false');
    expect(metadata.annotations).toMatchObject({ 'linkerd.io/inject': 'disabled', 'consul.hashicorp.com/connect-inject': 'false' });
  });

  it('mode istio: sidecar, mTLS, CUSTOM policies for gateway and workloads, Telemetry tags', async () => {
    const objects = rendered.get('istio')!;
    expect(find(objects, 'Deployment', 'genops-mesh').spec.template.metadata.labels['sidecar.istio.io/inject']).toBe('true');
    expect(find(objects, 'PeerAuthentication').spec.mtls.mode).toBe('STRICT');
    const policies = all(objects, 'AuthorizationPolicy');
    expect(policies.map((policy) => policy.metadata.namespace ?? 'genops').sort()).toEqual(['genops', 'istio-system']);
    for (const policy of policies) expect(policy.spec).toMatchObject({ action: 'CUSTOM', provider: { name: 'genops-mesh' }, rules: [expect.objectContaining({ to: [{ operation: { paths: ['/v1/*'] } }] })] });
    // Not for calls from the gateway: CUSTOM rules cannot name principals, so by the peer the sidecar appends to XFCC.
    expect(find(policies, 'AuthorizationPolicy', 'genops-mesh-workloads').spec.rules[0].when).toEqual([
      { key: 'request.headers[x-forwarded-client-cert]', notValues: ['*;URI=spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account'] },
    ]);
    expect(find(policies, 'AuthorizationPolicy', 'genops-mesh-workloads').spec).toEqual(parseObjects(read('deploy/istio/authorization-policy.yaml'))[1]!.spec);
    // ...which only an mTLS connection makes trustworthy: the same STRICT PeerAuthentication for the governed workloads.
    expect(find(objects, 'PeerAuthentication', 'genops-mesh-governed-strict').spec).toEqual(parseObjects(read('deploy/istio/authorization-policy.yaml'))[2]!.spec);
    const tags = find(objects, 'Telemetry').spec.tracing[0].customTags as Record<string, { header: { name: string } }>;
    expect(tags['genops.route']?.header.name).toBe('x-genops-route');
    expect(tags['genops.decision_id']?.header.name).toBe('x-genops-decision-id');
    expect(Object.keys(tags)).toHaveLength(10);
    // The one EnvoyFilter: the gateway re-routes on x-genops-route (istiod drops meshConfig clearRouteCache), as deploy/istio ships it.
    const [routeCache] = parseObjects(read('deploy/istio/gateway-route-cache.yaml'));
    expect(all(objects, 'EnvoyFilter').map((filter) => [filter.metadata.namespace, filter.spec])).toEqual([['istio-system', routeCache!.spec]]);

    // The alternative: ext_proc through EnvoyFilters (sidecars here, the gateway in its namespace), the ones the kustomize manifests ship.
    const extProc = await template('mesh.mode=istio', 'istio.governance=ext-proc');
    expect(all(extProc, 'AuthorizationPolicy')).toHaveLength(0);
    const shipped = parseObjects(read('deploy/istio/ext-proc/envoy-filter.yaml'));
    expect(all(extProc, 'EnvoyFilter').map((filter) => [filter.metadata.namespace ?? 'genops', filter.spec])).toEqual(shipped.map((filter) => [filter.metadata.namespace, filter.spec]));
  });

  it('istio.metering: observed (the genops.metering filter) with the shared store, synchronous without or when asked', async () => {
    const meteringPatches = (objects: Awaited<ReturnType<typeof template>>) =>
      all(objects, 'EnvoyFilter').flatMap((filter) => (filter.spec.configPatches as { patch: { value: { name: string } } }[]).filter((patch) => patch.patch.value.name === 'genops.metering'));
    const declared = (objects: Awaited<ReturnType<typeof template>>) => JSON.stringify(all(objects, 'EnvoyFilter')).includes('x-genops-metering');
    // The chart's own store, or a Redis of yours: observed, on the sidecars and the gateway.
    for (const store of [[], ['redis.enabled=false', 'redis.url=redis://redis.genops:6379/0']]) {
      const observed = await template('mesh.mode=istio', 'istio.governance=ext-proc', ...store);
      expect(meteringPatches(observed)).toHaveLength(2);
      expect(declared(observed)).toBe(true);
    }
    // In memory (one replica), or asked for: synchronous, every chunk through the deciding filter.
    for (const set of [['redis.enabled=false', 'autoscaling.enabled=false', 'replicaCount=1'], ['istio.metering=synchronous']]) {
      const synchronous = await template('mesh.mode=istio', 'istio.governance=ext-proc', ...set);
      expect(meteringPatches(synchronous)).toHaveLength(0);
      expect(declared(synchronous)).toBe(false);
    }
    // Observed in memory with several replicas would leave streams unmatched: refused.
    await expect(template('mesh.mode=istio', 'istio.governance=ext-proc', 'istio.metering=observed', 'redis.enabled=false', 'allowPerReplicaBudgets=true', 'autoscaling.enabled=false', 'replicaCount=2')).rejects.toThrow(/istio\.metering=observed with several replicas needs the shared store/);
    await expect(template('mesh.mode=istio', 'istio.governance=ext-proc', 'istio.metering=bogus')).rejects.toThrow(/metering/);
  });

  it('istio.oneRoundTrip: an undecided route per istio.paths entry (the filter\'s own path matchers) and the idle timeouts set back; false leaves istiod\'s routes alone', async () => {
    type Patch = { applyTo: string; match: { context: string }; patch: { operation: string; value: { name?: string; match?: { headers: { name: string; string_match?: unknown }[] }; route: { idle_timeout: string } } } };
    const routePatches = (objects: Awaited<ReturnType<typeof template>>) =>
      all(objects, 'EnvoyFilter').flatMap((filter) => (filter.spec.configPatches as Patch[]).filter((patch) => patch.applyTo === 'HTTP_ROUTE'));
    const paths = routePatches(await template('mesh.mode=istio', 'istio.governance=ext-proc', 'istio.paths={/v1/*,/openai/chat}'));
    for (const context of ['SIDECAR_INBOUND', 'GATEWAY']) {
      const inContext = paths.filter((patch) => patch.match.context === context);
      expect(inContext.map((patch) => patch.patch.operation)).toEqual(['INSERT_FIRST', 'INSERT_FIRST', 'MERGE']);
      expect(inContext.slice(0, 2).map((patch) => patch.patch.value.match!.headers.find((header) => header.name === ':path')!.string_match)).toEqual([{ prefix: '/v1/' }, { exact: '/openai/chat' }]);
      expect(inContext[2]!.patch.value.route.idle_timeout).toBe('0s');
    }
    const edge = routePatches(await template('mesh.mode=istio', 'istio.governance=ext-proc', 'istio.routeIdleTimeout=300s'));
    expect(edge.filter((patch) => patch.patch.operation === 'MERGE').map((patch) => patch.patch.value.route.idle_timeout)).toEqual(['300s', '300s']);
    await expect(template('mesh.mode=istio', 'istio.governance=ext-proc', 'istio.routeIdleTimeout=5m')).rejects.toThrow(/routeIdleTimeout/);
    expect(routePatches(await template('mesh.mode=istio', 'istio.governance=ext-proc', 'istio.oneRoundTrip=false'))).toEqual([]);
  });

  it('mode linkerd: meshed service and a meshed Envoy gateway running the ext_authz config for this release', () => {
    const objects = rendered.get('linkerd')!;
    expect(find(objects, 'Deployment', 'genops-mesh').spec.template.metadata.annotations['linkerd.io/inject']).toBe('enabled');
    const gateway = find(objects, 'Deployment', 'genops-mesh-gateway');
    expect(gateway.spec.template.metadata.annotations['linkerd.io/inject']).toBe('enabled');
    const config = find(objects, 'ConfigMap', 'genops-mesh-gateway-envoy').data['envoy.yaml'] as string;
    expect(config).toBe(`${renderEnvoyConfig(read('deploy/envoy/ext-authz.yaml'), { LISTENER_HOST: '0.0.0.0', LISTENER_PORT: 10000, ADMIN_PORT: 9901, GENOPS_HOST: 'genops-mesh.genops.svc.cluster.local', GENOPS_PORT: 9001, UPSTREAM_HOST: 'ai-inference.genops.svc.cluster.local', UPSTREAM_PORT: 8080 }).trimEnd()}\n`);
    expect(parse(config)).toBeTypeOf('object');
    expect(find(objects, 'Service', 'genops-mesh-gateway').spec.ports[0].port).toBe(10000);
  });

  it('mode consul: gRPC service defaults, intentions, and builtin/ext-authz on each governed service', async () => {
    const objects = await template('mesh.mode=consul', 'consul.governedServices={ai-inference,embeddings}');
    const defaults = all(objects, 'ServiceDefaults');
    expect(find(defaults, 'ServiceDefaults', 'genops-mesh').spec.protocol).toBe('grpc');
    for (const name of ['ai-inference', 'embeddings']) {
      expect(find(defaults, 'ServiceDefaults', name).spec.envoyExtensions).toEqual([
        expect.objectContaining({ name: 'builtin/ext-authz', required: true, arguments: expect.objectContaining({ config: expect.objectContaining({ grpcService: { target: { service: { name: 'genops-mesh' }, timeout: '250ms' } }, statusOnError: 503 }) }) }),
      ]);
    }
    expect(find(objects, 'Deployment', 'genops-mesh').spec.template.metadata.annotations['consul.hashicorp.com/transparent-proxy-exclude-outbound-ports']).toBe('6379');
    expect(find(objects, 'StatefulSet', 'genops-mesh-redis').spec.template.metadata.annotations).toEqual({ 'consul.hashicorp.com/connect-inject': 'false' });
    expect(find(objects, 'ServiceIntentions').spec.sources).toEqual([{ name: 'ai-inference', action: 'allow' }, { name: 'embeddings', action: 'allow' }, { name: '*', action: 'deny' }]);
  });

  it('takes the policy, Redis URL, OTLP endpoint and replica count from values', async () => {
    const policyPath = join(tmpdir(), `genops-helm-policy-${process.pid}.yaml`);
    writeFileSync(policyPath, read('deploy/default-policy.yaml').replace('capacity: 100', 'capacity: 5'));
    const objects = parseObjects(await helm(['template', 'genops-mesh', CHART, '--namespace', 'genops', '--set-file', `policy=${policyPath}`, '--set', 'redis.url=redis://redis.genops:6379/0', '--set', 'otel.endpoint=http://otel-collector.observability:4317', '--set', 'autoscaling.enabled=false', '--set', 'replicaCount=3', '--set', 'forwardAuth.enabled=false']));
    rmSync(policyPath, { force: true });
    expect(find(objects, 'ConfigMap', 'genops-mesh-policy').data['policy.yaml']).toContain('capacity: 5');
    const deployment = find(objects, 'Deployment', 'genops-mesh');
    expect(deployment.spec.replicas).toBe(3);
    expect(all(objects, 'HorizontalPodAutoscaler')).toHaveLength(0);
    const env = envOf(containerOf(deployment));
    expect(env.GENOPS_REDIS_URL).toEqual({ secretKeyRef: { name: 'genops-mesh-redis', key: 'url' } });
    expect(find(objects, 'Secret', 'genops-mesh-redis').stringData.url).toBe('redis://redis.genops:6379/0');
    expect(all(objects, 'StatefulSet'), 'your Redis instead of the chart\'s').toHaveLength(0);
    expect(env.GENOPS_REDIS_PASSWORD).toBeUndefined();
    expect(env).toMatchObject({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://otel-collector.observability:4317', GENOPS_FORWARD_AUTH_PORT: '0' });
    expect(env.OTEL_SDK_DISABLED).toBeUndefined();
    expect(find(objects, 'Service', 'genops-mesh').spec.ports.map((port: { name: string }) => port.name)).toEqual(['grpc', 'http-admin']);
  });

  it('persistence off: the store runs on an emptyDir without the append-only file', async () => {
    const objects = await template('redis.persistence.enabled=false');
    const store = find(objects, 'StatefulSet', 'genops-mesh-redis');
    expect(store.spec.volumeClaimTemplates).toBeUndefined();
    expect(store.spec.template.spec.volumes).toEqual([{ name: 'data', emptyDir: {} }]);
    expect(argValue(store.spec.template.spec.containers[0].args, '--appendonly')).toBe('no');
    expect(argValue(store.spec.template.spec.containers[0].args, '--maxmemory-policy')).toBe('noeviction');
  });

  it('takes the store password from your Secret when named, and generates none', async () => {
    const objects = await template('redis.auth.existingSecret=my-redis', 'redis.auth.existingSecretKey=pw');
    expect(all(objects, 'Secret')).toHaveLength(0);
    const env = envOf(containerOf(find(objects, 'Deployment', 'genops-mesh')));
    expect(env.GENOPS_REDIS_PASSWORD).toEqual({ secretKeyRef: { name: 'my-redis', key: 'pw' } });
    expect(find(objects, 'StatefulSet', 'genops-mesh-redis').spec.template.spec.containers[0].env).toEqual([{ name: 'REDIS_PASSWORD', valueFrom: { secretKeyRef: { name: 'my-redis', key: 'pw' } } }]);
  });

  it('refuses in-memory limits and budgets with more than one replica or worker, unless allowPerReplicaBudgets', async () => {
    await expect(template('redis.enabled=false')).rejects.toThrow(/redis\.enabled=false with 10 replicas \(autoscaling\.maxReplicas\).*up to 10 x every limit and budget.*allowPerReplicaBudgets=true/);
    await expect(template('redis.enabled=false', 'autoscaling.enabled=false', 'replicaCount=3')).rejects.toThrow(/with 3 replicas \(replicaCount\)/);
    await expect(template('redis.enabled=false', 'autoscaling.enabled=false', 'replicaCount=1', 'workers=2')).rejects.toThrow(/workers=2/);
    await expect(template('redis.enabled=false', 'autoscaling.maxReplicas=1', 'autoscaling.minReplicas=1')).resolves.toBeDefined();
    const single = await template('redis.enabled=false', 'autoscaling.enabled=false', 'replicaCount=1');
    const allowed = await template('redis.enabled=false', 'allowPerReplicaBudgets=true');
    for (const objects of [single, allowed]) {
      expect(all(objects, 'StatefulSet')).toHaveLength(0);
      const env = envOf(containerOf(find(objects, 'Deployment', 'genops-mesh')));
      expect(env.GENOPS_REDIS_URL).toBeUndefined();
      expect(env.GENOPS_REDIS_PASSWORD).toBeUndefined();
    }
    // One replica says so (no per-replica warning); several allowed ones keep the service's warning.
    expect(envOf(containerOf(find(single, 'Deployment', 'genops-mesh'))).GENOPS_SINGLE_REPLICA).toBe('true');
    expect(envOf(containerOf(find(allowed, 'Deployment', 'genops-mesh'))).GENOPS_SINGLE_REPLICA).toBeUndefined();
    expect(envOf(containerOf(find(rendered.get('none')!, 'Deployment', 'genops-mesh'))).GENOPS_SINGLE_REPLICA).toBeUndefined();
    // A Redis of yours lifts the refusal.
    await expect(template('redis.enabled=false', 'redis.url=redis://redis.genops:6379/0')).resolves.toBeDefined();
  });

  it('passes workers to every replica as GENOPS_WORKERS', async () => {
    const env = envOf(containerOf(find(await template('workers=2'), 'Deployment', 'genops-mesh')));
    expect(env.GENOPS_WORKERS).toBe('2');
    expect(envOf(containerOf(find(rendered.get('none')!, 'Deployment', 'genops-mesh'))).GENOPS_WORKERS).toBeUndefined();
  });

  it('refuses an unknown mesh mode (values.schema.json)', async () => {
    await expect(template('mesh.mode=kuma')).rejects.toThrow(/mesh\.mode|mode/);
  });
});
