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
