/**
 * The shipped Envoy configs: every placeholder is documented, and the real
 * Envoy accepts each file once rendered (`envoy --mode validate`).
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { ENVOY_CONFIGS, findEnvoy, placeholdersOf, renderEnvoyConfig, REPO_ROOT } from '../support/index.js';

const PLACEHOLDERS = ['LISTENER_HOST', 'LISTENER_PORT', 'ADMIN_PORT', 'GENOPS_HOST', 'GENOPS_PORT', 'UPSTREAM_HOST', 'UPSTREAM_PORT'];
const VALUES = { LISTENER_HOST: '0.0.0.0', LISTENER_PORT: 10000, ADMIN_PORT: 9901, GENOPS_HOST: 'genops-mesh.genops.svc.cluster.local', GENOPS_PORT: 9001, UPSTREAM_HOST: 'ai-service.internal', UPSTREAM_PORT: 8080 };

describe.each(Object.entries(ENVOY_CONFIGS))('deploy/envoy config for %s', (_mode, path) => {
  const template = readFileSync(join(REPO_ROOT, path), 'utf8');
  const dir = mkdtempSync(join(tmpdir(), 'genops-envoy-validate-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('uses exactly the documented placeholders', () => {
    expect(placeholdersOf(template).sort()).toEqual([...PLACEHOLDERS].sort());
    const readme = readFileSync(join(REPO_ROOT, 'deploy/envoy/README.md'), 'utf8');
    for (const name of PLACEHOLDERS) expect(readme).toContain(`\${${name}}`);
  });

  it('is accepted by the real Envoy once rendered', async () => {
    const rendered = join(dir, 'envoy.yaml');
    writeFileSync(rendered, renderEnvoyConfig(template, VALUES, path));
    const { stdout } = await promisify(execFile)(findEnvoy(), ['--mode', 'validate', '-c', rendered, '--log-level', 'error']);
    expect(stdout).toContain('OK');
  });

  it('refuses to render with a placeholder left empty', () => {
    expect(() => renderEnvoyConfig(template, { ...VALUES, GENOPS_PORT: '' }, path)).toThrow(/no value for placeholder \$\{GENOPS_PORT\}/);
  });
});
