/**
 * `npm run demo`: the whole path on this machine. Boots a stub LLM provider,
 * genops-mesh (dist/main.js, default policy) and the real Envoy with
 * deploy/envoy/ext-proc.yaml in front of them, sends a dozen requests across
 * teams, tiers and models, prints what happened to each, and shuts down.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { startGovernanceStack, type GovernanceStack } from './start-governance-stack.js';
import { startStubLlm, type StubLlm } from './stub-llm.js';

interface DemoRequest {
  readonly note: string;
  readonly headers: Record<string, string>;
  /** The model the request body names (what clients and SDKs send). */
  readonly model: string;
}

interface Row {
  readonly note: string;
  readonly team: string;
  readonly tier: string;
  readonly model: string;
  readonly status: number;
  readonly decision: string;
  readonly reasonCode: string;
  readonly route: string;
  readonly tokens: string;
  readonly cost: string;
}

const MODE = 'ext-proc' as const;

function request(note: string, context: { team?: string; tier?: string; model?: string; headerModel?: string; customer?: string; extra?: Record<string, string> }): DemoRequest {
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    'x-genops-customer-id': context.customer ?? 'acme-corp',
    'x-genops-project': 'support-assistant',
    ...context.extra,
  };
  if (context.team !== undefined) headers['x-genops-team'] = context.team;
  if (context.tier !== undefined) headers['x-genops-customer-tier'] = context.tier;
  if (context.headerModel !== undefined) headers['x-genops-model'] = context.headerModel;
  return { note, headers, model: context.model ?? 'claude-sonnet-4-5' };
}

const REQUESTS: readonly DemoRequest[] = [
  request('premium customers get the top model', { team: 'ml-platform', tier: 'premium', model: 'claude-opus-4-1-20250805' }),
  request('standard tier routes to claude-haiku', { team: 'ml-platform', tier: 'standard', model: 'claude-haiku-4-5' }),
  request('basic tier routes to claude-sonnet', { team: 'ml-platform', tier: 'basic', model: 'claude-sonnet-4-5-20250929' }),
  request('team override: product-team keeps premium on sonnet', { team: 'product-team', tier: 'premium', model: 'claude-sonnet-4-5' }),
  request('no tier: the default route', { team: 'ml-research', model: 'gpt-4o-2024-08-06' }),
  request('an allowed model for the team and tier', { team: 'data-science', tier: 'standard', model: 'gpt-4o' }),
  request('gpt-4o-mini is not gpt-4o: not in the team\'s models', { team: 'data-science', tier: 'standard', model: 'gpt-4o-mini' }),
  request('a model with no price: counted, cost unknown', { team: 'ml-platform', tier: 'premium', model: 'mistral-large-2411' }),
  request('headers are normalized (ML-Platform)', { team: 'ML-Platform', tier: 'Premium' }),
  request('a client-chosen x-genops-route is overwritten', { team: 'ml-platform', tier: 'basic', extra: { 'x-genops-route': 'claude-opus' } }),
  request('missing team', {}),
  request('team not in the policy', { team: 'marketing', tier: 'standard' }),
  request('basic tier may not use claude-opus', { team: 'ml-platform', tier: 'basic', model: 'claude-opus-4-1' }),
  request('product-team may not use claude-opus', { team: 'product-team', tier: 'standard', model: 'claude-opus-4-1' }),
  request('a header cannot unlock another model', { team: 'product-team', tier: 'standard', headerModel: 'claude-haiku', model: 'claude-opus-4-1' }),
  request('malformed customer id', { team: 'ml-platform', customer: 'acme corp!' }),
];

async function send(stack: GovernanceStack, demo: DemoRequest): Promise<Row & { decisionId: string | undefined }> {
  const response = await fetch(`${stack.url}/v1/chat/completions`, {
    method: 'POST',
    headers: demo.headers,
    body: JSON.stringify({ model: demo.model, max_tokens: 256, messages: [{ role: 'user', content: 'Hello!' }] }),
  });
  const body = (await response.json().catch(() => ({}))) as { reason_code?: string; received?: { route?: string; routed_by?: string } };
  const allowed = response.ok;
  return {
    note: demo.note,
    team: demo.headers['x-genops-team'] ?? '-',
    tier: demo.headers['x-genops-customer-tier'] ?? '-',
    model: demo.model,
    status: response.status,
    decision: allowed ? 'ALLOWED' : response.status === 429 ? 'RATE_LIMITED' : 'BLOCKED',
    reasonCode: body.reason_code ?? '-',
    route: allowed ? routeOf(body.received) : '-',
    tokens: '-',
    cost: '-',
    decisionId: response.headers.get('x-genops-decision-id') ?? undefined,
  };
}

/** The x-genops-route the provider got; flagged if Envoy picked a different route for it. */
function routeOf(received: { route?: string; routed_by?: string } | undefined): string {
  const route = received?.route ?? '?';
  return received?.routed_by === route ? route : `${route} (envoy route: ${received?.routed_by ?? 'none'})`;
}

/**
 * The service's own log is the authority: the decision (ALLOWED, WARNING, BLOCKED, RATE_LIMITED)
 * and, for allowed requests, the usage record (tokens read from the provider's response, cost).
 */
async function withLoggedResults(stack: GovernanceStack, rows: (Row & { decisionId: string | undefined })[]): Promise<Row[]> {
  const wanted = new Set(rows.flatMap((row) => (row.decisionId ? [row.decisionId] : [])));
  const allowed = new Set(rows.flatMap((row) => (row.decisionId && row.status === 200 ? [row.decisionId] : [])));
  const logged = new Map<string, string>();
  const usage = new Map<string, { tokens: string; cost: string }>();
  for (let attempt = 0; attempt < 40 && (logged.size < wanted.size || usage.size < allowed.size); attempt++) {
    for (const line of stack.service.logs()) {
      if (typeof line.decision_id !== 'string') continue;
      if (line.event === 'decision' && typeof line.result === 'string') logged.set(line.decision_id, line.result);
      if (line.event === 'usage') {
        const tokens = line.tokens as { input: number; output: number };
        usage.set(line.decision_id, { tokens: `${tokens.input}/${tokens.output}`, cost: typeof line.cost === 'string' ? `$${line.cost}` : 'unpriced' });
      }
    }
    if (logged.size < wanted.size || usage.size < allowed.size) await sleep(50);
  }
  return rows.map(({ decisionId, ...row }) => ({ ...row, decision: (decisionId && logged.get(decisionId)) || row.decision, ...(decisionId ? usage.get(decisionId) : undefined) }));
}

function printTable(rows: readonly Row[]): void {
  const header = ['#', 'team', 'tier', 'model (body)', 'status', 'decision', 'reason code', 'route', 'tokens in/out', 'cost USD', 'shows'];
  const cells = rows.map((row, index) => [String(index + 1), row.team, row.tier, row.model, String(row.status), row.decision, row.reasonCode, row.route, row.tokens, row.cost, row.note]);
  const widths = header.map((title, column) => Math.max(title.length, ...cells.map((line) => line[column]!.length)));
  const numeric = new Set([0, 4]);
  const format = (line: readonly string[]) =>
    line.map((cell, column) => (numeric.has(column) ? cell.padStart(widths[column]!) : cell.padEnd(widths[column]!))).join('  ').trimEnd();
  console.log(format(header));
  console.log(widths.map((width) => '-'.repeat(width)).join('  '));
  for (const line of cells) console.log(format(line));
}

async function main(): Promise<number> {
  let llm: StubLlm | undefined;
  let stack: GovernanceStack | undefined;
  try {
    llm = await startStubLlm();
    // Debug level: the service logs allowed decisions too, so the table can show each result.
    stack = await startGovernanceStack({ mode: MODE, upstreamPort: llm.port, serviceEnv: { LOG_LEVEL: 'debug' } });
    console.log(`genops-mesh demo: client -> Envoy (${stack.url}, deploy/envoy/${MODE}.yaml) -> stub LLM (port ${llm.port})`);
    console.log(`                  Envoy asks genops-mesh over ${MODE} (gRPC port ${stack.service.grpcPort}, default policy)\n`);
    const rows: (Row & { decisionId: string | undefined })[] = [];
    for (const demo of REQUESTS) rows.push(await send(stack, demo));
    const results = await withLoggedResults(stack, rows);
    printTable(results);
    const mismatched = results.some((row) => row.route.includes('envoy route:'));
    console.log(`\nroute: the x-genops-route the provider received; ${mismatched ? 'rows marked "envoy route:" were NOT routed by the matching Envoy route' : 'Envoy picked its route of the same name for each'}.`);
    console.log('tokens and cost: read by genops-mesh from the provider\'s response (its usage field), priced with the shipped price table.');
    return 0;
  } catch (error) {
    console.error(`demo failed: ${error instanceof Error ? error.message : String(error)}`);
    return 1;
  } finally {
    await stack?.stop().catch((error: unknown) => console.error(`stopping: ${String(error)}`));
    await llm?.stop();
  }
}

process.exitCode = await main();
