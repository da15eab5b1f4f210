import { expect } from 'vitest';
import type { KubeObject } from './kube-tools.js';

/** The service's container in a rendered Deployment. */
export function containerOf(deployment: KubeObject): KubeObject {
  const container = deployment.spec.template.spec.containers.find((candidate: KubeObject) => candidate.name === 'genops-mesh');
  expect(container, 'the genops-mesh container').toBeDefined();
  return container;
}

export function envOf(container: KubeObject): Record<string, unknown> {
  return Object.fromEntries((container.env as { name: string; value?: string; valueFrom?: unknown }[]).map((entry) => [entry.name, entry.value ?? entry.valueFrom]));
}

/**
 * What every rendering of the genops-mesh Deployment must hold: health
 * probes, resources, a locked-down security context, the policy ConfigMap
 * mounted as a directory (so the kubelet's symlink swap hot-reloads it).
 */
export function expectGovernanceDeployment(deployment: KubeObject, options: { probe: 'grpc' | 'http'; policyConfigMap: string }): void {
  const pod = deployment.spec.template.spec;
  const container = containerOf(deployment);

  if (options.probe === 'grpc') {
    expect(container.readinessProbe.grpc).toEqual({ port: 9001 });
    expect(container.startupProbe.grpc).toEqual({ port: 9001 });
  } else {
    expect(container.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'http-admin' });
    expect(container.startupProbe.httpGet).toEqual({ path: '/readyz', port: 'http-admin' });
  }
  expect(container.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'http-admin' });
  expect(container.ports).toEqual(expect.arrayContaining([
    expect.objectContaining({ name: 'grpc', containerPort: 9001 }),
    expect.objectContaining({ name: 'http-fwd-auth', containerPort: 9002 }),
    expect.objectContaining({ name: 'http-admin', containerPort: 9464 }),
  ]));

  expect(container.resources.requests).toMatchObject({ cpu: expect.any(String), memory: expect.any(String) });
  expect(container.resources.limits).toMatchObject({ memory: expect.any(String) });

  expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 1000, seccompProfile: { type: 'RuntimeDefault' } });
  expect(pod.automountServiceAccountToken).toBe(false);
  expect(container.securityContext).toMatchObject({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } });

  const env = envOf(container);
  expect(env).toMatchObject({ GENOPS_POLICY: '/etc/genops/policy.yaml', GENOPS_GRPC_PORT: '9001', GENOPS_ADMIN_PORT: '9464', GENOPS_FORWARD_AUTH_PORT: '9002' });
  const mount = container.volumeMounts.find((candidate: KubeObject) => candidate.mountPath === '/etc/genops');
  expect(mount, 'the policy mount').toMatchObject({ readOnly: true });
  expect(mount.subPath, 'a subPath mount never sees ConfigMap updates').toBeUndefined();
  const volume = pod.volumes.find((candidate: KubeObject) => candidate.name === mount.name);
  expect(volume.configMap.name).toBe(options.policyConfigMap);

  expect(deployment.spec.template.spec.terminationGracePeriodSeconds).toBeGreaterThanOrEqual(5 + 10 + 5);
  expect(container.lifecycle.preStop.sleep.seconds).toBe(5);
}

/** The Service: port named and typed gRPC so meshes use HTTP/2, plus forward auth and admin. */
export function expectGovernanceService(service: KubeObject): void {
  expect(service.spec.ports).toEqual(expect.arrayContaining([
    expect.objectContaining({ name: 'grpc', port: 9001, targetPort: 'grpc', appProtocol: 'grpc' }),
    expect.objectContaining({ name: 'http-forward-auth', port: 9002 }),
    expect.objectContaining({ name: 'http-admin', port: 9464 }),
  ]));
}

/** The value after `flag` in a container's args. */
export function argValue(args: readonly string[], flag: string): string | undefined {
  const index = args.indexOf(flag);
  return index < 0 ? undefined : args[index + 1];
}

/**
 * The shipped store: one Redis-compatible StatefulSet + Service, noeviction, requirepass from the
 * Secret that genops-mesh reads its password from, the same hardening as the service, only
 * genops-mesh pods admitted, and the genops-mesh Deployment (every replica) pointed at it.
 */
export function expectSharedStore(objects: KubeObject[], names: { store: string; secret: string; genopsPods: Record<string, string> }): void {
  const byName = (kind: string, name: string) => {
    const found = objects.filter((object) => object.kind === kind && (object.metadata.name === name || object.metadata.name.startsWith(`${name}-`)));
    expect(found.map((object) => object.metadata.name), `${kind} ${name}`).toHaveLength(1);
    return found[0]!;
  };
  const store = byName('StatefulSet', names.store);
  const secret = byName('Secret', names.secret);
  expect(store.spec.replicas).toBe(1);
  const pod = store.spec.template.spec;
  const container = pod.containers[0];
  expect(container.image).toMatch(/^valkey\/valkey:\d+\.\d+\.\d+(-alpine)?$/);
  expect(argValue(container.args, '--maxmemory-policy')).toBe('noeviction');
  expect(argValue(container.args, '--maxmemory')).toMatch(/^\d+mb$/);
  expect(argValue(container.args, '--requirepass')).toBe('$(REDIS_PASSWORD)');
  expect(container.env).toEqual([{ name: 'REDIS_PASSWORD', valueFrom: { secretKeyRef: { name: secret.metadata.name, key: 'password' } } }]);
  expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } });
  expect(pod.automountServiceAccountToken).toBe(false);
  expect(container.securityContext).toMatchObject({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } });
  expect(container.volumeMounts).toEqual([{ name: 'data', mountPath: argValue(container.args, '--dir') }]);
  expect(argValue(container.args, '--appendonly'), 'persistence on by default').toBe('yes');
  expect(store.spec.volumeClaimTemplates[0].metadata.name).toBe('data');

  const service = byName('Service', names.store);
  expect(service.spec.selector).toEqual(store.spec.selector.matchLabels);
  expect(service.spec.ports).toEqual([expect.objectContaining({ port: 6379, targetPort: 'tcp-redis' })]);
  const deployment = objects.find((object) => object.kind === 'Deployment' && object.metadata.name === 'genops-mesh')!;
  const selects = (selector: Record<string, string>, labels: Record<string, string>) => Object.entries(selector).every(([label, value]) => labels[label] === value);
  expect(selects(deployment.spec.selector.matchLabels, store.spec.template.metadata.labels), 'the genops-mesh Deployment and Service do not select the store pods').toBe(false);
  expect(selects(store.spec.selector.matchLabels, deployment.spec.template.metadata.labels), 'the store does not select genops-mesh pods').toBe(false);
  const policy = byName('NetworkPolicy', names.store);
  expect(policy.spec).toEqual({ podSelector: store.spec.selector, policyTypes: ['Ingress'], ingress: [{ from: [{ podSelector: { matchLabels: names.genopsPods } }], ports: [{ port: 6379, protocol: 'TCP' }] }] });
  for (const [label, value] of Object.entries(names.genopsPods)) expect(deployment.spec.template.metadata.labels[label]).toBe(value);

  // The Deployment's template is every replica's: each one opens the store with the Secret's password.
  const env = envOf(containerOf(deployment));
  expect(env.GENOPS_REDIS_URL).toBe(`redis://${service.metadata.name}:6379/0`);
  expect(env.GENOPS_REDIS_PASSWORD).toEqual({ secretKeyRef: { name: secret.metadata.name, key: 'password' } });
}
