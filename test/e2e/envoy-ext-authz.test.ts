/**
 * genops-mesh as Envoy's ext_authz service, through the real Envoy booted with
 * deploy/envoy/ext-authz.yaml and the default policy.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../support/index.js';
import { describeGovernanceDecisions, describePeerPrincipal, describeShutdownAndFailClosed, useEnvoyStack } from './envoy-scenarios.js';

describe('ext_authz: genops-mesh behind the real Envoy', () => {
  const envoy = useEnvoyStack('ext-authz');

  it('boots the shipped deploy/envoy/ext-authz.yaml with only its placeholders filled in', () => {
    const template = readFileSync(join(REPO_ROOT, 'deploy/envoy/ext-authz.yaml'), 'utf8');
    const pattern = template
      .split(/\$\{[A-Z_]+\}/)
      .map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
      .join('[^\\s,}]+');
    expect(readFileSync(envoy.stack.envoy.configPath, 'utf8')).toMatch(new RegExp(`^${pattern}$`));
  });

  describeGovernanceDecisions(envoy);
  // status_on_error 503 covers both: the 0.25 s Check timeout and a refused connection.
  describeShutdownAndFailClosed(envoy, { hung: 503, unreachable: 503 });
});

describe('ext_authz: genops-mesh behind the real Envoy with mTLS', () => {
  describePeerPrincipal('ext-authz');
});
