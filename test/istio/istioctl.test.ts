/**
 * Istio's own tools on every Istio manifest we ship: `istioctl validate` (the schemas and the
 * rules istiod's validating webhook applies, e.g. what a CUSTOM AuthorizationPolicy may match)
 * and `istioctl analyze` without a cluster (cross-resource checks), on deploy/istio, the
 * kustomize istio overlay and the Helm chart for every Istio setting.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { promisify } from 'node:util';
import { parse, stringify } from 'yaml';
import { afterAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../support/index.js';
import { helm, kustomize, parseObjects } from '../mesh/support/kube-tools.js';
import { findIstioctl } from './support/istio-tools.js';

const run = promisify(execFile);
const CHART = 'deploy/helm/genops-mesh';
const GOVERNANCE = ['ext-authz', 'ext-proc'] as const;
/** The one warning Istio gives every EnvoyFilter; the ext_proc variant and the gateway's route-cache patch need one. */
const ENVOY_FILTER_WARNING = 'EnvoyFilter exposes internal implementation details';

const work = mkdtempSync(join(tmpdir(), 'genops-istioctl-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

async function istioctl(args: string[]): Promise<{ code: number; output: string }> {
  try {
    const { stdout, stderr } = await run(findIstioctl(), args, { maxBuffer: 16 * 1024 * 1024, cwd: work });
    return { code: 0, output: stdout + stderr };
  } catch (error) {
    const { code, stdout, stderr } = error as { code?: number | string; stdout?: string; stderr?: string };
    if (typeof code !== 'number') throw error;
    return { code, output: (stdout ?? '') + (stderr ?? '') };
  }
}

/** Every YAML file under deploy/istio (Kustomizations and the IstioOperator included). */
function shippedIstioFiles(dir = join(REPO_ROOT, 'deploy/istio')): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? shippedIstioFiles(join(dir, entry.name)) : entry.name.endsWith('.yaml') ? [join(dir, entry.name)] : [],
  );
}

/** What `helm install -n genops` would create: the chart's objects, namespaced. */
async function renderChart(governance: string, ...set: string[]): Promise<string> {
  const args = ['template', 'genops-mesh', CHART, '--namespace', 'genops', '--set', 'mesh.mode=istio', '--set', `istio.governance=${governance}`, ...set.flatMap((value) => ['--set', value])];
  const objects = parseObjects(await helm(args));
  for (const object of objects) object.metadata.namespace ??= 'genops';
  const path = join(work, `chart-${governance}-${set.join('-') || 'defaults'}.yaml`);
  writeFileSync(path, objects.map((object) => stringify(object)).join('---\n'));
  return path;
}

/** meshConfig out of deploy/istio/mesh-config.yaml, for analyze's --meshConfigFile. */
function meshConfigFile(): string {
  const operator = parse(readFileSync(join(REPO_ROOT, 'deploy/istio/mesh-config.yaml'), 'utf8')) as { spec: { meshConfig: unknown } };
  const path = join(work, 'mesh-config.yaml');
  writeFileSync(path, stringify(operator.spec.meshConfig));
  return path;
}

function expectValid(result: { code: number; output: string }): void {
  expect(result.code, result.output).toBe(0);
  const warnings = result.output.split('\n').filter((line) => /^\s*\* /.test(line) || /may not provide/.test(line));
  expect(warnings.filter((line) => !line.includes(ENVOY_FILTER_WARNING)), result.output).toEqual([]);
}

async function analyze(files: string[]): Promise<{ code: number; output: string }> {
  return istioctl(['analyze', '--use-kube=false', '--all-namespaces', '--meshConfigFile', meshConfigFile(), ...files]);
}

/** analyze's findings at any level (errors fail the run, warnings and infos do not), except IST0133 (EnvoyFilter), one line each. */
function findings(output: string): string[] {
  return output.split('\n').filter((line) => /^(Error|Warning|Info) \[IST\d+\]/.test(line) && !line.includes('IST0133'));
}

describe('istioctl validate', () => {
  it.each(shippedIstioFiles().map((path) => [relative(REPO_ROOT, path), path]))('accepts %s', async (_name, path) => {
    expectValid(await istioctl(['validate', '-f', path]));
  });

  it('accepts the kustomize istio overlay as rendered', async () => {
    const path = join(work, 'overlay-istio.yaml');
    writeFileSync(path, (await kustomize('deploy/kubernetes/overlays/istio')).map((object) => stringify(object)).join('---\n'));
    expectValid(await istioctl(['validate', '-f', path]));
  });

  it.each(GOVERNANCE)('accepts the Helm chart with mesh.mode=istio, istio.governance=%s (with and without the gateway)', async (governance) => {
    expectValid(await istioctl(['validate', '-f', await renderChart(governance)]));
    expectValid(await istioctl(['validate', '-f', await renderChart(governance, 'istio.gateway.enabled=false')]));
  });

  it('refuses what istiod would refuse: a CUSTOM rule naming source principals', async () => {
    const path = join(work, 'principals.yaml');
    const [, workloads] = parseObjects(readFileSync(join(REPO_ROOT, 'deploy/istio/authorization-policy.yaml'), 'utf8'));
    workloads!.spec.rules[0].from = [{ source: { notPrincipals: ['cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account'] } }];
    writeFileSync(path, stringify(workloads));
    const result = await istioctl(['validate', '-f', path]);
    expect(result.code).not.toBe(0);
    expect(result.output).toContain('From.NotPrincipals is currently not supported with CUSTOM action');
  });
});

describe('istioctl analyze --use-kube=false (with deploy/istio/mesh-config.yaml)', () => {
  it('finds nothing in deploy/istio with the ext_authz policies, or with the ext_proc EnvoyFilter instead (and deploy/istio/identity)', async () => {
    const resources = (dir: string) => (parse(readFileSync(join(REPO_ROOT, dir, 'kustomization.yaml'), 'utf8')) as { resources: string[] }).resources.map((file) => join(REPO_ROOT, dir, file));
    const extAuthz = resources('deploy/istio');
    const extProc = [...extAuthz.filter((file) => !/authorization-policy|gateway-route-cache/.test(file)), ...resources('deploy/istio/ext-proc')];
    for (const files of [extAuthz, [...extProc, ...resources('deploy/istio/identity')]]) {
      const result = await analyze(files);
      expect(findings(result.output), result.output).toEqual([]);
      expect(result.code, result.output).toBe(0);
    }
  });

  it.each(GOVERNANCE)('finds nothing in the Helm chart with istio.governance=%s', async (governance) => {
    const result = await analyze([await renderChart(governance)]);
    expect(findings(result.output), result.output).toEqual([]);
    expect(result.code, result.output).toBe(0);
  });

  it('reports a broken manifest (the analysis is not empty by construction)', async () => {
    const path = join(work, 'broken-virtual-service.yaml');
    const [virtualService] = parseObjects(readFileSync(join(REPO_ROOT, 'deploy/istio/virtual-service.yaml'), 'utf8'));
    virtualService!.spec.gateways = ['genops/no-such-gateway', 'mesh'];
    writeFileSync(path, stringify(virtualService));
    const result = await analyze([path, join(REPO_ROOT, 'deploy/istio/gateway.yaml')]);
    expect(result.code).not.toBe(0);
    expect(findings(result.output).join('\n')).toContain('IST0101');
  });
});
