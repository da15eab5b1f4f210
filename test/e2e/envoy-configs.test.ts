/**
 * The shipped Envoy configs: every placeholder is documented, and the real
 * Envoy accepts each file once rendered (`envoy --mode validate`). The
 * variants of ext-proc.yaml are that file as it is plus their one change.
 */
import { execFile, execFileSync } from 'node:child_process';
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

describe('variants of deploy/envoy/ext-proc.yaml (ext-proc-uds.yaml, ext-proc-ungoverned-route.yaml, ext-proc-replicas.yaml)', () => {
  it('are ext-proc.yaml plus their one change, as scripts/render-ext-proc-variants.mjs renders them', () => {
    // Throws with the script's message when ext-proc.yaml changed and the variants were not re-rendered.
    execFileSync(process.execPath, [join(REPO_ROOT, 'scripts/render-ext-proc-variants.mjs'), '--check'], { stdio: ['ignore', 'ignore', 'pipe'] });
  });

  it('document their placeholders: the Unix socket variant names the socket instead of the service host and port', () => {
    const readme = readFileSync(join(REPO_ROOT, 'deploy/envoy/README.md'), 'utf8');
    const uds = placeholdersOf(readFileSync(join(REPO_ROOT, 'deploy/envoy/ext-proc-uds.yaml'), 'utf8'));
    expect(uds.sort()).toEqual([...PLACEHOLDERS.filter((name) => !name.startsWith('GENOPS_')), 'GENOPS_SOCKET'].sort());
    expect(readme).toContain('${GENOPS_SOCKET}');
    expect(placeholdersOf(readFileSync(join(REPO_ROOT, 'deploy/envoy/ext-proc-ungoverned-route.yaml'), 'utf8')).sort()).toEqual([...PLACEHOLDERS].sort());
    expect(placeholdersOf(readFileSync(join(REPO_ROOT, 'deploy/envoy/ext-proc-replicas.yaml'), 'utf8')).sort()).toEqual([...PLACEHOLDERS, 'GENOPS_HOST_2', 'GENOPS_PORT_2'].sort());
    expect(readme).toContain('${GENOPS_HOST_2}');
  });
});
