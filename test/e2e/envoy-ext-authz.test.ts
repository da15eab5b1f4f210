/**
 * genops-mesh as Envoy's ext_authz service, through the real Envoy booted with
 * deploy/envoy/ext-authz.yaml and the default policy.
 */
import { describe } from 'vitest';
import { describeGovernanceDecisions, describePeerPrincipal, describeShutdownAndFailClosed, useEnvoyStack } from './envoy-scenarios.js';

describe('ext_authz: genops-mesh behind the real Envoy', () => {
  const envoy = useEnvoyStack('ext-authz');
  describeGovernanceDecisions(envoy);
  // status_on_error 503 covers both: the 0.25 s Check timeout and a refused connection.
  describeShutdownAndFailClosed(envoy, { hung: 503, unreachable: 503 });
});

describe('ext_authz: genops-mesh behind the real Envoy with mTLS', () => {
  describePeerPrincipal('ext-authz');
});
