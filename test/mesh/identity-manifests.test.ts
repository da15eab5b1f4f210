/**
 * The identity artefacts: Istio's RequestAuthentication and EnvoyFilters
 * (deploy/istio/identity), cross-checked against the Envoy config the
 * identity e2e test boots, and TLS for the service's ports in the kustomize
 * component and the Helm chart.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadPolicyText } from '../../src/policy/policy-store.js';
import { renderEnvoyConfig, REPO_ROOT } from '../support/index.js';
import { all, find, helm, kustomize, parseObjects, type KubeObject } from './support/kube-tools.js';
import { containerOf, envOf } from './support/manifest-expectations.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Loose = Record<string, any>;
const read = (path: string) => readFileSync(join(REPO_ROOT, path), 'utf8');

/** The http_filters of ext-authz-jwt.yaml, the config envoy-identity.test.ts boots. */
function bootedFilters(): Loose[] {
  const config = parse(renderEnvoyConfig(read('deploy/envoy/ext-authz-jwt.yaml'), new Proxy({}, { get: () => '1' }) as Record<string, string>)) as Loose;
  return config.static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters as Loose[];
}

describe('verified-identity Envoy configs (deploy/envoy/*-jwt.yaml)', () => {
  it('are their base configs plus the identity blocks, as scripts/render-identity-configs.mjs renders them', () => {
    // Throws with the script's message when a base config changed and the variants were not re-rendered.
    execFileSync(process.execPath, [join(REPO_ROOT, 'scripts/render-identity-configs.mjs'), '--check'], { stdio: ['ignore', 'ignore', 'pipe'] });
  });
});

describe('Istio identity resources (deploy/istio/identity)', () => {
  let objects: KubeObject[];
  beforeAll(async () => {
    objects = await kustomize('deploy/istio/identity');
  });

  it("puts the user's RequestAuthentication on every proxy where genops-mesh binds claims (the ext_proc governance), with the payload header", async () => {
    const extProcTargets = all(await kustomize('deploy/istio/ext-proc'), 'EnvoyFilter').map((filter) => ({ namespace: filter.metadata.namespace, labels: filter.spec.workloadSelector.labels as Record<string, string> }));
    const authentications = all(objects, 'RequestAuthentication');
    expect(authentications.map((resource) => resource.metadata.namespace).sort()).toEqual(extProcTargets.map((target) => target.namespace).sort());
    for (const resource of authentications) {
      // Each selects (at least) every proxy the ext_proc filter of its namespace is on.
      const target = extProcTargets.find((candidate) => candidate.namespace === resource.metadata.namespace)!;
      expect(target.labels).toMatchObject(resource.spec.selector.matchLabels);
      expect(resource.spec.jwtRules).toEqual([
        { issuer: 'https://auth.example.com', jwksUri: 'https://auth.example.com/.well-known/jwks.json', audiences: ['genops-ai-api'], forwardOriginalToken: true, outputPayloadToHeader: 'x-jwt-payload' },
      ]);
    }
  });

  it('strips client-sent payload headers before jwt_authn, and the ext_proc filter forwards its metadata, as the booted configs do', async () => {
    const filters = bootedFilters();
    const names = filters.map((filter) => filter.name);
    expect(names.indexOf('envoy.filters.http.header_mutation')).toBeLessThan(names.indexOf('envoy.filters.http.jwt_authn'));
    const strip = filters.find((filter) => filter.name === 'envoy.filters.http.header_mutation')!.typed_config;
    const envoyFilters = all(objects, 'EnvoyFilter');
    expect(envoyFilters.map((filter) => filter.metadata.namespace).sort()).toEqual(['genops', 'istio-system']);
    for (const filter of envoyFilters) {
      const patches = filter.spec.configPatches as Loose[];
      const [patch, ...more] = patches;
      expect(more).toHaveLength(0);
      expect(patch!.patch.operation).toBe('INSERT_BEFORE');
      expect(patch!.match.listener.filterChain.filter.subFilter.name).toBe('envoy.filters.http.jwt_authn');
      expect(patch!.patch.value.typed_config).toEqual(strip);
      expect(patch!.match.context).toBe(filter.metadata.namespace === 'istio-system' ? 'GATEWAY' : 'SIDECAR_INBOUND');
    }
    const bootedExtProc = parse(renderEnvoyConfig(read('deploy/envoy/ext-proc-jwt.yaml'), new Proxy({}, { get: () => '1' }) as Record<string, string>)) as Loose;
    // The namespaces forwarded to the service are the same; only the booted sidecar config receives the
    // service's `genops` metadata (its observed metering and response headers); Istio's filter stays synchronous.
    const bootedMetadata = (bootedExtProc.static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters as Loose[]).find((filter) => filter.name === 'envoy.filters.http.ext_proc')!.typed_config.metadata_options;
    for (const extProc of all(await kustomize('deploy/istio/ext-proc'), 'EnvoyFilter')) {
      expect((extProc.spec.configPatches as Loose[])[0]!.patch.value.typed_config.extension_config.typed_config.metadata_options.forwarding_namespaces).toEqual(bootedMetadata.forwarding_namespaces);
    }
  });

  it('documents a policy identity block that the service loads and that reads what Istio produces', () => {
    const comment = read('deploy/istio/identity/kustomization.yaml')
      .split('\n')
      .filter((line) => line.startsWith('#   '))
      .map((line) => line.slice(4))
      .join('\n');
    const block = parse(comment.slice(comment.indexOf('spec:'))) as { spec: { identity: Loose } };
    const policy = parse(read('deploy/default-policy.yaml')) as { spec: Loose };
    policy.spec.identity = block.spec.identity;
    const compiled = loadPolicyText(stringify(policy), 'istio-identity.yaml');
    // Istio's jwt_authn writes the payload under "payload": the one source, never x-jwt-payload (outputPayloadToHeader, for upstreams).
    expect(compiled.identity).toMatchObject({ metadataKey: 'payload', payloadHeader: undefined, issuers: new Set(['https://auth.example.com']), audiences: new Set(['genops-ai-api']) });
  });
});

describe('TLS on the service\'s ports in the shipped manifests', () => {
  const expectTls = (deployment: KubeObject, secretName: string) => {
    const container = containerOf(deployment);
    expect(envOf(container)).toMatchObject({ GENOPS_TLS_CERT: '/etc/genops-tls/tls.crt', GENOPS_TLS_KEY: '/etc/genops-tls/tls.key', GENOPS_TLS_CLIENT_CA: '/etc/genops-tls/ca.crt' });
    expect(container.volumeMounts).toContainEqual({ name: 'tls', mountPath: '/etc/genops-tls', readOnly: true });
    expect(deployment.spec.template.spec.volumes).toContainEqual({ name: 'tls', secret: { secretName, defaultMode: 0o440 } });
    // The kubelet's gRPC probe cannot speak TLS.
    for (const probe of ['startupProbe', 'readinessProbe']) expect(container[probe].httpGet).toEqual({ path: '/readyz', port: 'http-admin' });
    return envOf(container);
  };

  it('kustomize: the tls component, used by overlays/standalone-tls, mounts the Secret as a directory', async () => {
    const env = expectTls(find(await kustomize('deploy/kubernetes/overlays/standalone-tls'), 'Deployment', 'genops-mesh'), 'genops-mesh-tls');
    expect(env.GENOPS_TLS_CLIENT_ALLOW).toBe('spiffe://cluster.local/ns/genops/sa/genops-gateway');
  });

  it('helm: tls.enabled mounts the Secret, passes the allow-list, and the schema refuses unknown keys', async () => {
    const template = (...set: string[]) => helm(['template', 'genops-mesh', 'deploy/helm/genops-mesh', '--namespace', 'genops', ...set.flatMap((value) => ['--set', value])]);
    const objects = parseObjects(await template('tls.enabled=true', 'tls.secretName=mesh-certs', 'tls.clientAllow={spiffe://cluster.local/ns/genops/sa/gw,envoy.genops.svc}'));
    const env = expectTls(find(objects, 'Deployment', 'genops-mesh'), 'mesh-certs');
    expect(env.GENOPS_TLS_CLIENT_ALLOW).toBe('spiffe://cluster.local/ns/genops/sa/gw,envoy.genops.svc');
    const plain = containerOf(find(parseObjects(await template()), 'Deployment', 'genops-mesh'));
    expect(Object.keys(envOf(plain)).filter((name) => name.startsWith('GENOPS_TLS_'))).toEqual([]);
    await expect(template('tls.enabled=true', 'tls.certFile=x')).rejects.toThrow(/certFile/);
  });
});
