/**
 * The Grafana dashboard and the Prometheus alert rules in deploy/ query only
 * what the service really exports: every metric name and label in every
 * expression is checked against a running service's /metrics after traffic,
 * a real Prometheus scrapes that service and evaluates every expression, and
 * promtool checks and unit-tests the rules.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnManaged, waitUntilReady, type ManagedProcess } from '../../src/demo/managed-process.js';
import { createMetrics } from '../../src/telemetry/metrics.js';
import { createGovernanceClient, type GovernanceClient } from '../support/governance-client.js';
import { freePort, REPO_ROOT, startService, type RunningService } from '../support/index.js';
import { referencesOf, templateLabels } from './promql-references.js';
import { eventually, extProcDecide, extProcExchange, scrape, tracingEnv, writePolicy, type Scrape } from './telemetry-support.js';

const DASHBOARD = join(REPO_ROOT, 'deploy/grafana/genops-mesh-dashboard.json');
const ALERTS = join(REPO_ROOT, 'deploy/prometheus/genops-mesh-alerts.yaml');
const ALERT_TESTS = join(REPO_ROOT, 'deploy/prometheus/genops-mesh-alerts.test.yaml');

/** Labels Prometheus attaches to every scraped series, and the series it makes itself. */
const TARGET_LABELS = ['job', 'instance'];
const PROMETHEUS_METRICS: Record<string, string[]> = { up: TARGET_LABELS };

interface Query {
  readonly where: string;
  /** PromQL with Grafana's variables replaced by values Prometheus accepts. */
  readonly expr: string;
  /** Labels the legend, or the alert annotations, print. */
  readonly printed: string[];
  /** A label_values() variable: the label it lists. */
  readonly listsLabel?: string;
  readonly source: 'dashboard' | 'alerts';
}

/** $__rate_interval and friends become durations; $var and ${var} inside matcher values become ".*". */
function fromGrafana(expr: string): string {
  return expr
    .replaceAll('$__rate_interval', '1m')
    .replaceAll('$__interval', '1m')
    .replaceAll('$__range', '1h')
    .replace(/\$\{?[a-zA-Z_][a-zA-Z0-9_]*\}?/g, '.*');
}

function dashboardQueries(): Query[] {
  const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as {
    panels: { title: string; panels?: unknown[]; targets?: { expr: string; legendFormat?: string }[] }[];
    templating: { list: { name: string; type: string; query: string | { query: string } }[] };
    annotations: { list: { name: string; expr?: string }[] };
  };
  const queries: Query[] = [];
  const panels = dashboard.panels.flatMap((panel) => [panel, ...((panel.panels ?? []) as typeof dashboard.panels)]);
  for (const panel of panels) {
    for (const target of panel.targets ?? []) {
      queries.push({ where: `panel "${panel.title}"`, expr: fromGrafana(target.expr), printed: templateLabels(target.legendFormat ?? ''), source: 'dashboard' });
    }
  }
  for (const variable of dashboard.templating.list.filter((entry) => entry.type === 'query')) {
    const text = typeof variable.query === 'string' ? variable.query : variable.query.query;
    const match = /^label_values\((.+),\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)$/.exec(text);
    if (!match) throw new Error(`variable ${variable.name}: expected label_values(selector, label), got ${text}`);
    queries.push({ where: `variable $${variable.name}`, expr: fromGrafana(match[1]!), printed: [], listsLabel: match[2]!, source: 'dashboard' });
  }
  for (const annotation of dashboard.annotations.list) {
    if (annotation.expr) queries.push({ where: `annotation "${annotation.name}"`, expr: fromGrafana(annotation.expr), printed: [], source: 'dashboard' });
  }
  return queries;
}

function alertQueries(): Query[] {
  const rules = parse(readFileSync(ALERTS, 'utf8')) as { groups: { rules: { alert: string; expr: string; annotations?: Record<string, string> }[] }[] };
  return rules.groups.flatMap((group) =>
    group.rules.map((rule) => ({
      where: `alert ${rule.alert}`,
      expr: rule.expr,
      printed: Object.values(rule.annotations ?? {}).flatMap(templateLabels).filter((label) => label !== 'value'),
      source: 'alerts' as const,
    })),
  );
}

/** Metric name → label names, as the running service exports them (falling back to the declared labels of families with no sample yet). */
function exportedLabels(scraped: Scrape): Map<string, Set<string>> {
  const exported = new Map<string, Set<string>>();
  for (const sample of scraped.samples) {
    const labels = exported.get(sample.name) ?? new Set<string>();
    for (const label of Object.keys(sample.labels)) labels.add(label);
    exported.set(sample.name, labels);
  }
  const declared = createMetrics();
  for (const [family, type] of scraped.types) {
    const names = type === 'histogram' ? [`${family}_bucket`, `${family}_sum`, `${family}_count`] : [family];
    if (names.some((name) => exported.has(name))) continue;
    // Registered, no sample yet (e.g. genops_usage_unpriced_total while every model has a price).
    const metric = declared.registry.getSingleMetric(family) as unknown as { labelNames?: string[] } | undefined;
    if (!metric) throw new Error(`/metrics lists ${family} but createMetrics() does not define it`);
    for (const name of names) exported.set(name, new Set([...(metric.labelNames ?? []), ...(name.endsWith('_bucket') ? ['le'] : [])]));
  }
  for (const [name, labels] of Object.entries(PROMETHEUS_METRICS)) exported.set(name, new Set(labels));
  return exported;
}

/** Every reason `query` refers to something the service does not export. */
function problemsOf(query: Query, exported: Map<string, Set<string>>): string[] {
  const problems: string[] = [];
  const { selectors, groupingLabels } = referencesOf(query.expr);
  if (selectors.length === 0) problems.push('reads no metric');
  const available = new Set(TARGET_LABELS);
  for (const selector of selectors) {
    if (selector.metric === undefined) {
      problems.push(`name-less selector {${selector.labels.join(',')}}`);
      continue;
    }
    const labels = exported.get(selector.metric);
    if (!labels) {
      problems.push(`metric ${selector.metric} is not exported`);
      continue;
    }
    for (const label of labels) available.add(label);
    for (const label of selector.labels) {
      if (!labels.has(label) && !TARGET_LABELS.includes(label)) problems.push(`${selector.metric} has no label ${label}`);
    }
  }
  for (const label of [...groupingLabels, ...query.printed, ...(query.listsLabel ? [query.listsLabel] : [])]) {
    if (!available.has(label)) problems.push(`label ${label} is on none of ${selectors.map((selector) => selector.metric).join(', ')}`);
  }
  return problems.map((problem) => `${query.source} ${query.where}: ${problem} (in ${query.expr.replace(/\s+/g, ' ')})`);
}

let service: RunningService;
let client: GovernanceClient;
let scraped: Scrape;
const queries = [...dashboardQueries(), ...alertQueries()];

beforeAll(async () => {
  // Tracing to an address where nothing listens: spans are dropped and OTLP errors counted, so those series exist too.
  const deadCollector = `http://127.0.0.1:${await freePort()}`;
  service = await startService({ policyPath: writePolicy(), env: tracingEnv(deadCollector, { OTEL_EXPORTER_OTLP_TIMEOUT: '500' }) });
  client = createGovernanceClient(`${service.host}:${service.grpcPort}`);
  const ctx = (extra: Record<string, string>) => ({ 'x-genops-team': 'ml-platform', 'x-genops-customer-id': 'dash', 'x-genops-project': 'dashboards', ...extra });
  await client.check(ctx({ 'x-genops-customer-tier': 'premium', 'x-genops-model': 'claude-opus' }));
  await client.check(ctx({ 'x-genops-team': 'marketing' }));
  await client.check(ctx({ 'x-genops-team': 'ml-research', 'x-genops-model': 'gpt-4o' }));
  for (let i = 0; i < 3; i++) await client.check(ctx({ 'x-genops-team': 'product-team', 'x-genops-customer-id': 'limited' }));
  await extProcDecide(client, ctx({ 'x-genops-customer-tier': 'basic' }));
  // A whole Chat Completions exchange through ext_proc: its usage fills the cost and token panels.
  await extProcExchange(client, {
    headers: { ':path': '/v1/chat/completions', ...ctx({ 'x-genops-team': 'ml-research', 'x-genops-customer-tier': 'standard', 'x-genops-project': 'budgeted-chat' }) },
    body: JSON.stringify({ model: 'gpt-4o', messages: [{ role: 'user', content: 'Hello' }] }),
    contentType: 'application/json',
    chunks: [
      '{"id":"chatcmpl-1","object":"chat.completion","model":"gpt-4o-2024-08-06","choices":[{"index":0,"message":{"role":"assistant","content":"Hi!"},"finish_reason":"stop"}],',
      '"usage":{"prompt_tokens":1000,"completion_tokens":500,"total_tokens":1500,"prompt_tokens_details":{"cached_tokens":0},"completion_tokens_details":{"reasoning_tokens":0}}}',
    ],
  });
  // An empty ProcessingRequest is malformed: counted in genops_malformed_messages_total.
  const stream = (client.extProc as unknown as { Process(): import('@grpc/grpc-js').ClientDuplexStream<object, object> }).Process();
  await new Promise<void>((resolve) => {
    stream.on('error', () => resolve());
    stream.on('data', () => undefined);
    stream.write({});
  });
  scraped = await eventually(async () => {
    const current = await scrape(service.adminUrl);
    return current.value('genops_backend_errors_total', { backend: 'otlp' }) > 0 && current.value('genops_malformed_messages_total') > 0 ? current : undefined;
  }, 'OTLP export errors and a malformed message to be counted', 20_000);
});

afterAll(async () => {
  client?.close();
  await service?.stop();
});

describe('deploy/grafana and deploy/prometheus query only what the service exports', () => {
  it('finds the queries: dashboard panels, variables and annotations, and every alert', () => {
    expect(queries.filter((query) => query.source === 'dashboard').length).toBeGreaterThanOrEqual(20);
    expect(queries.filter((query) => query.source === 'alerts').map((query) => query.where)).toEqual([
      'alert GenopsMeshDown',
      'alert GenopsMeshHighDenialRate',
      'alert GenopsMeshTeamRateLimited',
      'alert GenopsMeshDecisionLatencyHigh',
      'alert GenopsMeshPolicyReloadFailed',
      'alert GenopsMeshBackendErrors',
      'alert GenopsMeshSpansDropped',
      'alert GenopsMeshMalformedMessages',
      'alert GenopsMeshBudgetNearlySpent',
    ]);
  });

  it('every metric name and label in every query is one /metrics exports', () => {
    const exported = exportedLabels(scraped);
    // The check has teeth: a wrong name or label is reported.
    expect(problemsOf({ where: 'probe', expr: 'sum by (genops_teams) (rate(genops_request_total{decison="ALLOWED"}[5m]))', printed: [], source: 'dashboard' }, exported)).toHaveLength(2);
    expect(problemsOf({ where: 'probe', expr: 'sum by (tier) (rate(genops_requests_total{decison="ALLOWED"}[5m]))', printed: ['team'], source: 'dashboard' }, exported)).toHaveLength(3);
    expect(queries.flatMap((query) => problemsOf(query, exported))).toEqual([]);
  });

  it('covers the views the issue asks for', () => {
    const text = queries.map((query) => query.expr).join('\n');
    expect(text).toMatch(/sum by \(genops_tier\) \(rate\(genops_requests_total/);
    expect(text).toMatch(/sum by \(genops_team\) \(rate\(genops_requests_total/);
    expect(text).toMatch(/sum by \(reason_code\) \(rate\(genops_requests_total\{[^}]*decision=~"BLOCKED\|RATE_LIMITED"/);
    expect(text).toMatch(/histogram_quantile\(0\.5, sum by \(le, service\) \(rate\(genops_decision_duration_seconds_bucket/);
    expect(text).toMatch(/histogram_quantile\(0\.99, sum by \(le, service\) \(rate\(genops_decision_duration_seconds_bucket/);
    expect(text).toMatch(/decision="RATE_LIMITED"[^\n]*\/ sum/);
    expect(text).toMatch(/sum by \(genops_team\) \(rate\(genops_cost_total/);
  });

  it('promtool accepts the rules and their unit tests pass', () => {
    const promtool = findTool('promtool');
    const check = spawnSync(promtool, ['check', 'rules', ALERTS], { encoding: 'utf8' });
    expect(check.status, check.stdout + check.stderr).toBe(0);
    expect(check.stdout).toContain('SUCCESS: 9 rules found');
    const unit = spawnSync(promtool, ['test', 'rules', ALERT_TESTS], { encoding: 'utf8' });
    expect(unit.status, unit.stdout + unit.stderr).toBe(0);
  });

  describe('a real Prometheus scraping the service', () => {
    let prometheus: ManagedProcess | undefined;
    let url = '';
    let dir = '';

    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), 'genops-prometheus-'));
      writeFileSync(
        join(dir, 'prometheus.yml'),
        [
          'global: { scrape_interval: 1s, evaluation_interval: 1s }',
          `rule_files: [${JSON.stringify(ALERTS)}]`,
          'scrape_configs:',
          '  - job_name: genops-mesh',
          `    static_configs: [{ targets: ["${service.host}:${service.adminPort}"] }]`,
          '',
        ].join('\n'),
      );
      const port = await freePort();
      url = `http://127.0.0.1:${port}`;
      prometheus = spawnManaged('prometheus', findTool('prometheus'), [
        `--config.file=${join(dir, 'prometheus.yml')}`,
        `--storage.tsdb.path=${join(dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${port}`,
        '--log.level=warn',
      ], process.env);
      await waitUntilReady(prometheus, `${url}/-/ready`, 30_000);
      // Enough scrapes for rate() over a 1m window.
      await eventually(async () => (await query('count_over_time(up{job="genops-mesh"}[1m]) >= 3')).length > 0, 'three scrapes', 20_000);
    });

    afterAll(async () => {
      await prometheus?.stop();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    async function query(expr: string): Promise<{ metric: Record<string, string>; value: [number, string] }[]> {
      const response = await fetch(`${url}/api/v1/query?query=${encodeURIComponent(expr)}`);
      const body = (await response.json()) as { status: string; error?: string; data?: { result: { metric: Record<string, string>; value: [number, string] }[] } };
      if (body.status !== 'success') throw new Error(`${expr}: ${body.error}`);
      return body.data!.result;
    }

    it('parses and evaluates every query; every dashboard panel has data, cost and tokens included', async () => {
      const failures: string[] = [];
      const empty: string[] = [];
      for (const entry of queries) {
        try {
          const result = await query(entry.expr);
          const isFilter = entry.source === 'alerts' || entry.where.startsWith('annotation');
          if (result.length === 0 && !isFilter) empty.push(`${entry.where}: ${entry.expr}`);
        } catch (error) {
          failures.push(`${entry.where}: ${(error as Error).message}`);
        }
      }
      expect(failures).toEqual([]);
      expect(empty).toEqual([]);
      const byTier = await query('sum by (genops_tier) (genops_requests_total)');
      expect(Object.fromEntries(byTier.map((sample) => [sample.metric.genops_tier ?? '', Number(sample.value[1])]))).toEqual({ premium: 1, basic: 1, standard: 1, '': 5 });
      // "Cost by Team": what the service priced, per team, as Prometheus scraped it.
      const costByTeam = await query('sum by (genops_team) (genops_cost_total)');
      const priced = service.logs().find((line) => line.event === 'usage' && line.team === 'ml-research') as { cost: string } | undefined;
      expect(priced?.cost).toMatch(/^0\.\d+$/);
      expect(costByTeam.map((sample) => [sample.metric.genops_team, Number(sample.value[1])])).toEqual([['ml-research', Number(priced!.cost)]]);
      const tokens = await query('sum by (type) (genops_tokens_total)');
      expect(Object.fromEntries(tokens.map((sample) => [sample.metric.type, Number(sample.value[1])]))).toMatchObject({ input: 1000, output: 500 });
    });

    it('loads the alert rules and evaluates them without errors', async () => {
      const rules = await eventually(async () => {
        const response = (await (await fetch(`${url}/api/v1/rules`)).json()) as { data: { groups: { rules: { name: string; health: string; lastError?: string }[] }[] } };
        const all = response.data.groups.flatMap((group) => group.rules);
        return all.length === 9 && all.every((rule) => rule.health !== 'unknown') ? all : undefined;
      }, 'the rules to be evaluated', 20_000);
      expect(rules.filter((rule) => rule.health !== 'ok')).toEqual([]);
    });
  });
});

/** promtool and prometheus come from the Debian `prometheus` package (scripts/setup.sh installs it). */
function findTool(name: string): string {
  for (const candidate of [`/usr/bin/${name}`, `/usr/local/bin/${name}`]) if (existsSync(candidate)) return candidate;
  const which = spawnSync('which', [name], { encoding: 'utf8' });
  if (which.status === 0 && which.stdout.trim()) return which.stdout.trim();
  throw new Error(`${name} is not installed: run npm run setup (it installs the Debian prometheus package)`);
}
