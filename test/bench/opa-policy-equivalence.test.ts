/**
 * The bench compares genops-mesh with the OPA Envoy plugin on "the same
 * policy": bench/policy-peers.yaml for genops-mesh, bench/opa/policy.rego
 * for OPA. This test holds the claim: both real servers get the same
 * CheckRequests — hand-picked edge cases and a few hundred seeded random
 * header combinations — and must agree on allow/deny, the HTTP status, the
 * reason code, and for an allowed request on the headers sent upstream.
 *
 * The OPA Envoy plugin is built by scripts/build-peers.sh (pinned, cached in
 * .tools/bin; ~6 min cold on 2 cores, nothing when present). The test runs
 * it when the binary is missing, so a fresh machine needs no extra step; it
 * never skips.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CheckResponse } from '../../src/envoy/envoy-messages.js';
import { OPA_ENVOY_BINARY, startOpaEnvoy, type RunningPeer } from '../../bench/lib/peer-processes.js';
import { createGovernanceClient, type GovernanceClient } from '../support/governance-client.js';
import { REPO_ROOT, startService, type RunningService } from '../support/index.js';
import { seededRandom as seeded } from '../support/seeded-random.js';

const BUILD_TIMEOUT_MS = 20 * 60_000;

/** What a user of either server would notice about one answer. */
interface Verdict {
  allowed: boolean;
  httpStatus: number;
  reasonCode: string | undefined;
  upstream: Record<string, string> | undefined;
  removed: string[] | undefined;
}

function verdictOf(response: CheckResponse): Verdict {
  if (response.status?.code === 0 || response.status?.code === undefined) {
    const upstream: Record<string, string> = {};
    for (const option of response.ok_response?.headers ?? []) {
      const key = option.header?.key ?? '';
      if (key !== 'x-genops-decision-id') upstream[key] = option.header?.value ?? '';
    }
    return { allowed: true, httpStatus: 200, reasonCode: undefined, upstream, removed: [...(response.ok_response?.headers_to_remove ?? [])].sort() };
  }
  const body = response.denied_response?.body ?? '';
  const reason = (JSON.parse(body) as { reason_code?: string }).reason_code;
  return { allowed: false, httpStatus: response.denied_response?.status?.code ?? 0, reasonCode: reason, upstream: undefined, removed: undefined };
}


const ABSENT = Symbol('absent');
type Pool = readonly (string | typeof ABSENT)[];
/** Values per governance header: valid, normalizable, blank, malformed, too long. */
const POOLS: Record<string, Pool> = {
  'x-genops-team': [ABSENT, 'ml-platform', 'product-team', 'ml-research', 'data-science', 'ML-Platform', '  product-team ', 'finance', 'ml_platform', '', '   ', `a${'-b'.repeat(40)}`],
  'x-genops-customer-id': [ABSENT, 'cust-0000001', 'acme_42', ' acme ', '', 'cust!', '-leading', 'x'.repeat(129), 'x'.repeat(128)],
  'x-genops-project': [ABSENT, 'support-chatbot', 'v1.2', 'proj_a', '', '.hidden', 'p'.repeat(129), 'résumé'],
  'x-genops-model': [ABSENT, 'claude-opus', 'claude-sonnet', 'claude-haiku', 'gpt-4o', 'GPT-4o', 'gpt-4o-mini', 'meta/llama-3:70b', 'bad model', '', 'claude-'],
  'x-genops-customer-tier': [ABSENT, 'premium', 'standard', 'basic', 'Premium', 'gold', ''],
  'x-genops-environment': [ABSENT, 'production', 'Staging', 'dev_1', ''],
  'x-genops-cost-center': [ABSENT, 'cc-4711', 'cc 4711', ''],
  'x-genops-feature': [ABSENT, 'chat', 'summarize.v2', '-x'],
};

const VALID: Record<string, string> = {
  'x-genops-team': 'ml-platform',
  'x-genops-customer-id': 'cust-0000001',
  'x-genops-project': 'support-chatbot',
};
/** What a well-behaved client sends for each header, so that the later rules are reached too. */
const GOOD: Record<string, Pool> = {
  'x-genops-team': ['ml-platform', 'product-team', 'ml-research', 'data-science', 'finance', 'sales-ops'],
  'x-genops-customer-id': ['cust-0000001'],
  'x-genops-project': ['support-chatbot'],
  'x-genops-model': [ABSENT, 'claude-opus', 'claude-sonnet', 'claude-haiku', 'gpt-4o', 'gpt-4o-mini'],
  'x-genops-customer-tier': [ABSENT, 'premium', 'standard', 'basic'],
  'x-genops-environment': [ABSENT, 'production'],
  'x-genops-cost-center': [ABSENT, 'cc-4711'],
  'x-genops-feature': [ABSENT, 'chat'],
};

const CASES: { name: string; headers: Record<string, string> | undefined }[] = [
  { name: 'the bench request', headers: { ...VALID, 'x-genops-customer-tier': 'premium', 'x-genops-model': 'claude-opus', 'x-genops-environment': 'production', 'x-genops-cost-center': 'cc-4711', 'x-genops-feature': 'chat' } },
  { name: 'no governance headers', headers: {} },
  { name: 'no team', headers: { 'x-genops-customer-id': 'c1', 'x-genops-project': 'p' } },
  { name: 'no customer id', headers: { 'x-genops-team': 'ml-platform', 'x-genops-project': 'p' } },
  { name: 'blank project', headers: { ...VALID, 'x-genops-project': '  ' } },
  { name: 'unlisted team', headers: { ...VALID, 'x-genops-team': 'finance' } },
  { name: 'team in capitals (normalized)', headers: { ...VALID, 'x-genops-team': 'DATA-SCIENCE' } },
  { name: 'invalid team', headers: { ...VALID, 'x-genops-team': 'ml_platform' } },
  { name: 'invalid model beats a missing header', headers: { 'x-genops-team': 'ml-platform', 'x-genops-model': 'bad model' } },
  { name: 'model the team may not use', headers: { ...VALID, 'x-genops-team': 'product-team', 'x-genops-model': 'gpt-4o' } },
  { name: 'model the team may use, in capitals', headers: { ...VALID, 'x-genops-team': 'ml-research', 'x-genops-model': 'GPT-4o' } },
  { name: 'invalid tier', headers: { ...VALID, 'x-genops-customer-tier': 'gold' } },
  { name: 'customer id too long', headers: { ...VALID, 'x-genops-customer-id': 'c'.repeat(129) } },
  { name: 'a CheckRequest without attributes.request.http', headers: undefined },
];

function randomHeaders(random: () => number): Record<string, string> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  for (const [name, pool] of Object.entries(POOLS)) {
    const from = random() < 0.85 ? GOOD[name]! : pool;
    const value = from[Math.floor(random() * from.length)]!;
    if (value !== ABSENT) headers[name] = value;
  }
  return headers;
}

let genops: RunningService;
let opa: RunningPeer;
let genopsClient: GovernanceClient;
let opaClient: GovernanceClient;

beforeAll(async () => {
  if (!existsSync(OPA_ENVOY_BINARY)) {
    execFileSync('bash', [join(REPO_ROOT, 'scripts/build-peers.sh'), 'opa'], { stdio: 'inherit', timeout: BUILD_TIMEOUT_MS });
  }
  [genops, opa] = await Promise.all([
    startService({ policyPath: join(REPO_ROOT, 'bench/policy-peers.yaml'), env: { LOG_LEVEL: 'warn' } }),
    startOpaEnvoy(),
  ]);
  genopsClient = createGovernanceClient(`127.0.0.1:${genops.grpcPort}`);
  opaClient = createGovernanceClient(`127.0.0.1:${opa.grpcPort}`);
}, BUILD_TIMEOUT_MS + 60_000);

afterAll(async () => {
  genopsClient?.close();
  opaClient?.close();
  await Promise.all([genops?.stop(), opa?.stop()]);
});

async function both(headers: Record<string, string> | undefined): Promise<{ genops: Verdict; opa: Verdict }> {
  // The body Envoy sends with with_request_body: both policies decide on the headers alone.
  const body = '{"model":"claude-opus","messages":[{"role":"user","content":"Summarize the ticket, please."}]}';
  const request = headers ? { attributes: { request: { http: { method: 'POST', path: '/v1/chat/completions', headers, body } } } } : { attributes: {} };
  const [fromGenops, fromOpa] = await Promise.all([genopsClient.checkRaw(request), opaClient.checkRaw(request)]);
  return { genops: verdictOf(fromGenops), opa: verdictOf(fromOpa) };
}

describe('bench/opa/policy.rego decides what genops-mesh decides with bench/policy-peers.yaml', () => {
  it.each(CASES)('$name', async ({ headers }) => {
    const { genops: expected, opa: actual } = await both(headers);
    expect(actual).toEqual(expected);
  });

  it('agrees on 400 seeded random header combinations, allowed and denied alike', async () => {
    const random = seeded(15);
    const outcomes = new Map<string, number>();
    for (let i = 0; i < 400; i++) {
      const headers = randomHeaders(random);
      const { genops: expected, opa: actual } = await both(headers);
      expect({ case: i, headers, verdict: actual }).toEqual({ case: i, headers, verdict: expected });
      const key = expected.allowed ? 'ALLOWED' : `${expected.httpStatus} ${expected.reasonCode}`;
      outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
    }
    // The generator must reach every rule, or agreeing would prove little.
    expect([...outcomes.keys()].sort()).toEqual(['400 x_invalid_context', '403 POLICY_DENY_MODEL', '403 x_missing_context', '403 x_team_not_allowed', 'ALLOWED']);
    for (const count of outcomes.values()) expect(count).toBeGreaterThanOrEqual(10);
  });
});
