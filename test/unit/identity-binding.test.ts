/**
 * spec.identity: governance fields bound to verified JWT claims and to the
 * mTLS peer, through the decision engine and the ext_authz / ext_proc adapters.
 */
import { describe, expect, it } from 'vitest';
import { createAuthzAdapter } from '../../src/envoy/authz-adapter.js';
import type { DecisionReporter } from '../../src/envoy/decision-reporter.js';
import { createExtProcSessionFactory } from '../../src/envoy/ext-proc-session.js';
import { denialHeaders } from '../../src/envoy/governance-headers.js';
import { createDecisionEngine, type DecisionInput } from '../../src/governance/decision-engine.js';
import type { Decision } from '../../src/governance/decision.js';
import { createGovernor } from '../../src/governance/governor.js';
import { loadPolicyText } from '../../src/policy/policy-store.js';

const GATEWAY = 'spiffe://cluster.local/ns/ml-platform/sa/gateway';
const BATCH = 'spiffe://cluster.local/ns/batch/sa/jobs';

/** ml-platform names its workloads only for the peer tests: elsewhere its team principal rule would refuse callers without mTLS. */
function policyYaml(identity: string, withPrincipals = identity.includes('peer:')): string {
  return `apiVersion: genops.ai/v1alpha1
kind: GovernancePolicy
metadata: { name: identity-test }
spec:
  context: { required: [team, customerId] }
  teams:
    ml-platform: { models: ["*"]${withPrincipals ? `, principals: ["${GATEWAY}"]` : ''} }
    product-team: { models: [claude-haiku] }
    ml-research: { models: ["*"]${withPrincipals ? ', principals: ["spiffe://cluster.local/ns/batch/*"]' : ''} }
  identity:
${identity
  .trim()
  .split('\n')
  .map((line) => `    ${line}`)
  .join('\n')}
`;
}

function engineFor(identity: string) {
  const policy = loadPolicyText(policyYaml(identity), 'identity-policy.yaml');
  return createDecisionEngine({ policy: () => policy, newDecisionId: () => 'd-1' });
}

const TEAM_FROM_GROUPS = `
claims:
  team: { claim: groups, mode: must-match }
  customerId: { claim: customer.id, mode: claim-wins }
  project: { claim: project, mode: fill }
`;

const token = (claims: Record<string, unknown>) => ({ jwt_payload: { iss: 'https://issuer.test', sub: 'user-7', ...claims } });
const headersOf = (headers: Record<string, string>) => (name: string) => headers[name];
function decide(identity: string, input: { headers?: Record<string, string>; claims?: Record<string, unknown>; principal?: string; path?: string; trusted?: boolean; forwardAuth?: boolean }): Decision {
  const decisionInput: DecisionInput = {
    headers: headersOf(input.headers ?? {}),
    principal: input.principal,
    path: input.path ?? '/v1/messages',
    jwtMetadata: input.claims ? token(input.claims) : undefined,
    payloadHeaderTrusted: input.trusted,
    withoutJwtMetadata: input.forwardAuth,
  };
  return engineFor(identity).decide(decisionInput);
}

describe('JWT claim binding', () => {
  const claims = { groups: ['employees', 'ml-platform'], customer: { id: 'acme' }, project: 'chatbot' };

  it('lets a token for team A with header team A through, and logs which claim decided each field', () => {
    const decision = decide(TEAM_FROM_GROUPS, { headers: { 'x-genops-team': 'ML-Platform', 'x-genops-customer-id': 'acme' }, claims });
    expect(decision).toMatchObject({ result: 'ALLOWED', context: { team: 'ml-platform', customerId: 'acme', project: 'chatbot' } });
    expect(decision.identity).toEqual({
      source: 'jwt_metadata',
      issuer: 'https://issuer.test',
      subject: 'user-7',
      decidedBy: undefined,
      bindings: [
        { field: 'team', from: 'claim groups', mode: 'must-match', result: 'matched' },
        { field: 'customerId', from: 'claim customer.id', mode: 'claim-wins', result: 'matched' },
        { field: 'project', from: 'claim project', mode: 'fill', result: 'filled' },
      ],
    });
  });

  it('refuses header team B with a token for team A: 403 x_identity_mismatch naming the claim', () => {
    const decision = decide(TEAM_FROM_GROUPS, { headers: { 'x-genops-team': 'product-team', 'x-genops-customer-id': 'acme' }, claims });
    expect(decision).toMatchObject({ result: 'BLOCKED', reasonCode: 'x_identity_mismatch', httpStatus: 403 });
    expect(decision.message).toBe('x-genops-team product-team does not match the token claim groups');
    expect(decision.identity?.decidedBy).toBe('claim groups');
  });

  it('fills an absent team header from the one listed team among the groups', () => {
    expect(decide(TEAM_FROM_GROUPS, { headers: {}, claims }).context).toMatchObject({ team: 'ml-platform', customerId: 'acme' });
  });

  it('does not guess between two listed teams in the groups: the header must choose one of them', () => {
    const twoTeams = { ...claims, groups: ['ml-platform', 'ml-research'] };
    expect(decide(TEAM_FROM_GROUPS, { headers: {}, claims: twoTeams })).toMatchObject({ reasonCode: 'x_missing_context', message: 'missing required header x-genops-team' });
    expect(decide(TEAM_FROM_GROUPS, { headers: { 'x-genops-team': 'ml-research' }, claims: twoTeams })).toMatchObject({ result: 'ALLOWED', context: { team: 'ml-research' } });
  });

  it('lets the claim win over a different or invalid header in claim-wins mode, upstream headers included', () => {
    const replaced = decide(TEAM_FROM_GROUPS, { headers: { 'x-genops-customer-id': 'someone-else' }, claims });
    expect(replaced).toMatchObject({ result: 'ALLOWED', context: { customerId: 'acme' } });
    expect(replaced.identity?.bindings[1]).toMatchObject({ field: 'customerId', result: 'replaced' });
    expect(decide(TEAM_FROM_GROUPS, { headers: { 'x-genops-customer-id': 'bad id!' }, claims })).toMatchObject({ result: 'ALLOWED', context: { customerId: 'acme' } });
  });

  it('keeps a sent header in fill mode', () => {
    expect(decide(TEAM_FROM_GROUPS, { headers: { 'x-genops-project': 'other' }, claims }).context.project).toBe('other');
  });

  it('refuses a request without a token when a field is bound must-match or claim-wins: 401 x_identity_required with a Bearer challenge', () => {
    const decision = decide(TEAM_FROM_GROUPS, { headers: { 'x-genops-team': 'ml-platform', 'x-genops-customer-id': 'acme' } });
    expect(decision).toMatchObject({ result: 'BLOCKED', reasonCode: 'x_identity_required', httpStatus: 401 });
    expect(decision.message).toBe('x-genops-team is bound to the token claim groups: a verified identity (bearer token) is required');
    expect(Object.fromEntries(denialHeaders(decision))).toMatchObject({ 'www-authenticate': 'Bearer realm="genops-mesh"' });
  });

  it('refuses a header the token has no claim for when the field is bound', () => {
    const decision = decide(TEAM_FROM_GROUPS, { headers: { 'x-genops-team': 'ml-platform' }, claims: { customer: { id: 'acme' } } });
    expect(decision).toMatchObject({ reasonCode: 'x_identity_mismatch', message: 'x-genops-team ml-platform is not backed by the token: it has no claim groups' });
  });

  it('refuses a scalar claim whose value breaks the field rule with 401 x_identity_invalid', () => {
    const decision = decide(TEAM_FROM_GROUPS, { headers: {}, claims: { ...claims, customer: { id: 'not valid!' } } });
    expect(decision).toMatchObject({ reasonCode: 'x_identity_invalid', httpStatus: 401 });
    expect(decision.message).toContain('token claim customer.id value must be letters, digits');
    expect(Object.fromEntries(denialHeaders(decision))['www-authenticate']).toBe('Bearer realm="genops-mesh", error="invalid_token"');
  });

  it('reads prefixed list entries, integer claims, and namespaced top-level claim names that contain dots', () => {
    const identity = `
claims:
  team: { claim: roles, prefix: "team:", mode: claim-wins }
  customerId: { claim: "https://genops.ai/customer", mode: claim-wins }
  costCenter: { claim: [org, "cost.center"], mode: claim-wins }
`;
    const decision = decide(identity, { headers: { 'x-genops-team': 'product-team' }, claims: { roles: ['admin', 'team:ml-research'], 'https://genops.ai/customer': 4711, org: { 'cost.center': 'cc-42' } } });
    expect(decision).toMatchObject({ result: 'ALLOWED', context: { team: 'ml-research', customerId: '4711', costCenter: 'cc-42' } });
  });

  it('checks the issuer and the audience Envoy forwards in the payload', () => {
    const identity = `
jwt: { issuers: ["https://issuer.test"], audiences: [genops-mesh] }
claims: { team: { claim: team } }
`;
    const headers = { 'x-genops-customer-id': 'acme' };
    expect(decide(identity, { headers, claims: { team: 'ml-platform', aud: ['other', 'genops-mesh'] } }).result).toBe('ALLOWED');
    expect(decide(identity, { headers, claims: { team: 'ml-platform', aud: 'other' } })).toMatchObject({ reasonCode: 'x_identity_invalid', message: 'token audience is not one this service accepts', identity: { decidedBy: 'audience' } });
    expect(decide(identity, { headers, claims: { team: 'ml-platform', aud: 'genops-mesh', iss: 'https://evil.test' } })).toMatchObject({ reasonCode: 'x_identity_invalid', message: 'token issuer "https://evil.test" is not accepted' });
  });

  it('requires an identity on the listed paths only', () => {
    const identity = `
required: { paths: [/v1/] }
claims: { project: { claim: project, mode: fill } }
`;
    const headers = { 'x-genops-team': 'product-team', 'x-genops-customer-id': 'acme' };
    expect(decide(identity, { headers, path: '/v1/messages' })).toMatchObject({ reasonCode: 'x_identity_required', httpStatus: 401, message: 'a verified identity (bearer token) is required' });
    expect(decide(identity, { headers, path: '/internal/ping' }).result).toBe('ALLOWED');
  });

  it('reads a payload header only when the policy names it and the adapter vouches that its proxy strips client copies', () => {
    const forged = Buffer.from(JSON.stringify({ groups: ['ml-platform'], customer: { id: 'acme' } })).toString('base64url');
    const headers = { 'x-genops-team': 'ml-platform', 'x-jwt-payload': forged };
    expect(decide(TEAM_FROM_GROUPS, { headers, trusted: true }).reasonCode).toBe('x_identity_required');
    const headerOnly = `${TEAM_FROM_GROUPS}\njwt: { payloadHeader: x-jwt-payload }`;
    expect(decide(headerOnly, { headers, trusted: true })).toMatchObject({ result: 'ALLOWED', context: { team: 'ml-platform', customerId: 'acme' }, identity: { source: 'payload_header' } });
    expect(decide(headerOnly, { headers: { 'x-jwt-payload': 'not base64 json' }, trusted: true })).toMatchObject({ reasonCode: 'x_identity_invalid', message: 'x-jwt-payload is not a base64url-encoded JSON object' });
    // An adapter that does not vouch (Istio CUSTOM ext_authz runs before any strip filter; forward auth): ignored, and the refusal says why.
    expect(decide(headerOnly, { headers })).toMatchObject({
      result: 'BLOCKED',
      reasonCode: 'x_identity_required',
      httpStatus: 401,
      message: 'x-genops-team is bound to the token claim groups: a verified identity (bearer token) is required (x-jwt-payload is not read here: GENOPS_TRUST_PAYLOAD_HEADER does not name this adapter as one whose proxy removes client-sent copies)',
      identity: { source: 'none' },
    });
  });

  it('never falls back from the metadata key to a payload header: no metadata is no token', () => {
    const forged = Buffer.from(JSON.stringify({ groups: ['ml-platform'], customer: { id: 'acme' } })).toString('base64url');
    const headers = { 'x-genops-team': 'ml-platform', 'x-jwt-payload': forged };
    const both = `${TEAM_FROM_GROUPS}\njwt: { metadataKey: payload, payloadHeader: x-jwt-payload }`;
    for (const identity of [TEAM_FROM_GROUPS, `${TEAM_FROM_GROUPS}\njwt: { metadataKey: payload }`, both]) {
      expect(decide(identity, { headers, trusted: true })).toMatchObject({ reasonCode: 'x_identity_required', identity: { source: 'none' } });
    }
    // Forward auth carries no metadata: there the named header is the source, where trusted.
    expect(decide(both, { headers, trusted: true, forwardAuth: true })).toMatchObject({ result: 'ALLOWED', identity: { source: 'payload_header' } });
    expect(decide(both, { headers, forwardAuth: true }).reasonCode).toBe('x_identity_required');
    // With a token, the metadata decides whatever the header says.
    const header = Buffer.from(JSON.stringify({ groups: ['product-team'] })).toString('base64url');
    expect(decide(TEAM_FROM_GROUPS, { headers: { 'x-jwt-payload': header }, claims, trusted: true })).toMatchObject({ context: { team: 'ml-platform' }, identity: { source: 'jwt_metadata' } });
  });

  it('in dry-run reports the violation as a WARNING and leaves the context as the headers made it', () => {
    const decision = decide(`${TEAM_FROM_GROUPS}\nmode: dry-run`, { headers: { 'x-genops-team': 'product-team', 'x-genops-customer-id': 'someone' }, claims });
    expect(decision).toMatchObject({ result: 'WARNING', reasonCode: 'x_identity_mismatch', dryRun: true, context: { team: 'product-team', customerId: 'someone' } });
  });
});

describe('mTLS peer binding of the team', () => {
  const headers = { 'x-genops-customer-id': 'acme' };

  it('must-match: a team\'s traffic must come from its workloads; a team without principals is refused', () => {
    const identity = 'peer: { team: must-match }';
    expect(decide(identity, { headers: { ...headers, 'x-genops-team': 'ml-platform' }, principal: GATEWAY }).result).toBe('ALLOWED');
    expect(decide(identity, { headers: { ...headers, 'x-genops-team': 'ml-platform' }, principal: BATCH })).toMatchObject({ reasonCode: 'x_identity_mismatch', httpStatus: 403, message: `caller ${BATCH} is not a workload of team ml-platform`, identity: { decidedBy: 'peer' } });
    expect(decide(identity, { headers: { ...headers, 'x-genops-team': 'product-team' }, principal: GATEWAY }).reasonCode).toBe('x_identity_mismatch');
    expect(decide(identity, { headers: { ...headers, 'x-genops-team': 'ml-platform' } })).toMatchObject({ reasonCode: 'x_identity_mismatch', message: 'the team is bound to the mTLS caller identity, and the request has none' });
    expect(decide(identity, { headers, principal: BATCH }).context.team).toBe('ml-research');
  });

  it('fill: takes the caller\'s team only when no header names one', () => {
    expect(decide('peer: { team: fill }', { headers, principal: GATEWAY }).context.team).toBe('ml-platform');
    expect(decide('peer: { team: fill }', { headers: { ...headers, 'x-genops-team': 'product-team' }, principal: GATEWAY }).context.team).toBe('product-team');
  });

  it('claim-wins: the caller\'s team replaces the header', () => {
    const decision = decide('peer: { team: claim-wins }', { headers: { ...headers, 'x-genops-team': 'product-team' }, principal: BATCH });
    expect(decision).toMatchObject({ result: 'ALLOWED', context: { team: 'ml-research' } });
    expect(decision.identity?.bindings).toEqual([{ field: 'team', from: 'peer', mode: 'claim-wins', result: 'replaced' }]);
    expect(decide('peer: { team: claim-wins }', { headers, principal: 'spiffe://cluster.local/ns/x/sa/y' })).toMatchObject({ reasonCode: 'x_identity_mismatch', message: 'caller spiffe://cluster.local/ns/x/sa/y is not a workload of any team' });
  });

  it('refuses a JWT team that the peer does not back when both are bound', () => {
    const identity = 'claims: { team: { claim: team } }\npeer: { team: claim-wins }';
    expect(decide(identity, { headers, claims: { team: 'ml-platform' }, principal: BATCH })).toMatchObject({ reasonCode: 'x_identity_mismatch', message: `caller ${BATCH} is not a workload of team ml-platform` });
  });
});

describe('identity policy validation', () => {
  const problemOf = (identity: string) => {
    try {
      loadPolicyText(policyYaml(identity), '/etc/genops/policy.yaml');
    } catch (error) {
      return (error as Error).message;
    }
    throw new Error('expected the policy to be rejected');
  };
  it('names the file, the YAML path and the problem', () => {
    expect(problemOf('claims: { team: { claim: groups, mode: must-equal } }')).toMatch(/\/etc\/genops\/policy\.yaml.*spec\.identity\.claims\.team\.mode/s);
    expect(problemOf('claims: { model: { claim: model } }')).toMatch(/spec\.identity\.claims/);
    expect(problemOf('jwt: { payloadHeader: X-JWT-Payload }')).toMatch(/spec\.identity\.jwt\.payloadHeader.*lowercase header name/s);
    expect(problemOf('requried: true')).toMatch(/spec\.identity.*requried/s);
  });
});

describe('adapters hand the jwt_authn metadata to the engine', () => {
  const policy = loadPolicyText(policyYaml(TEAM_FROM_GROUPS), 'identity-policy.yaml');
  const reported: Decision[] = [];
  const reporter: DecisionReporter = { report: (_service, decision) => reported.push(decision) };
  const governor = createGovernor({ engine: createDecisionEngine({ policy: () => policy }) });
  // google.protobuf.Struct as protobufjs decodes it.
  const jwtAuthn = {
    filter_metadata: {
      'envoy.filters.http.jwt_authn': {
        fields: {
          jwt_payload: {
            kind: 'structValue',
            structValue: {
              fields: {
                groups: { kind: 'listValue', listValue: { values: [{ kind: 'stringValue', stringValue: 'ml-platform' }] } },
                customer: { kind: 'structValue', structValue: { fields: { id: { kind: 'stringValue', stringValue: 'acme' } } } },
              },
            },
          },
        },
      },
    },
  };

  it('ext_authz: attributes.metadata_context', async () => {
    const adapter = createAuthzAdapter({ governor, reporter, policy: () => policy, now: () => 0 });
    const allowed = await adapter.check({ attributes: { metadata_context: jwtAuthn, request: { http: { path: '/v1/messages', headers: { 'x-genops-team': 'ml-platform' } } } } });
    expect(allowed.status.code).toBe(0);
    const refused = await adapter.check({ attributes: { request: { http: { path: '/v1/messages', headers: { 'x-genops-team': 'ml-platform' } } } } });
    expect(refused.denied_response?.status.code).toBe(401);
    expect(refused.status.code).toBe(16);
    expect(refused.denied_response?.headers.find((option) => option.header.key === 'www-authenticate')?.header.value).toBe('Bearer realm="genops-mesh"');
  });

  it('ext_proc: ProcessingRequest.metadata_context', async () => {
    const session = createExtProcSessionFactory({ governor, reporter, policy: () => policy, now: () => 0 }).open();
    const headers = { headers: [{ key: ':path', raw_value: Buffer.from('/v1/messages') }, { key: 'x-genops-team', raw_value: Buffer.from('product-team') }] };
    const reply = await session.handle({ request_headers: { headers, end_of_stream: true }, metadata_context: jwtAuthn });
    expect(reply).toMatchObject({ immediate_response: { status: { code: 403 } } });
    expect(reported.at(-1)).toMatchObject({ reasonCode: 'x_identity_mismatch', identity: { decidedBy: 'claim groups' } });
  });
});
