/**
 * A dead or hung collector changes nothing for traffic: decisions keep their
 * answers and their speed, lost spans are counted, and export failures are
 * logged once, not per span.
 */
import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { createGovernanceClient, type GovernanceClient } from '../support/governance-client.js';
import { startService, type RunningService } from '../support/index.js';
import { startOtlpReceiver, type OtlpReceiver } from '../support/otlp-receiver.js';
import { eventually, scrape, tracingEnv } from './telemetry-support.js';

let receiver: OtlpReceiver | undefined;
let service: RunningService | undefined;
let client: GovernanceClient | undefined;

afterEach(async () => {
  client?.close();
  await service?.stop().catch(() => undefined);
  await receiver?.stop();
  client = undefined;
  service = undefined;
  receiver = undefined;
});

const allowed = () => ({ 'x-genops-team': 'ml-platform', 'x-genops-customer-id': `c-${randomUUID().slice(0, 8)}`, 'x-genops-project': 'chatbot' });

/** Sends `count` Checks one after another; returns the slowest round trip in ms. */
async function sendChecks(count: number): Promise<number> {
  let slowest = 0;
  for (let i = 0; i < count; i++) {
    const started = performance.now();
    const response = await client!.check(allowed());
    slowest = Math.max(slowest, performance.now() - started);
    expect(response.status.code).toBe(0);
  }
  return slowest;
}

describe('collector failures', () => {
  it('stopping the collector: every request is still decided, the lost spans are counted, and it recovers', async () => {
    receiver = await startOtlpReceiver();
    const port = receiver.port;
    service = await startService({ env: tracingEnv(receiver.endpoint, { OTEL_EXPORTER_OTLP_TIMEOUT: '1000' }) });
    client = createGovernanceClient(`${service.host}:${service.grpcPort}`);

    await sendChecks(10);
    await eventually(async () => (await scrape(service!.adminUrl)).value('genops_spans_exported_total') === 10, '10 spans exported');

    await receiver.stop();
    receiver = undefined;
    await sendChecks(30);
    const metrics = await eventually(async () => {
      const scraped = await scrape(service!.adminUrl);
      return scraped.value('genops_spans_dropped_total', { reason: 'export_failed' }) === 30 ? scraped : undefined;
    }, 'the 30 spans to be counted as dropped', 20_000);
    expect(metrics.value('genops_spans_dropped_total', { reason: 'queue_full' })).toBe(0);
    expect(metrics.value('genops_spans_exported_total')).toBe(10);
    expect(metrics.value('genops_backend_errors_total', { backend: 'otlp', kind: 'export' })).toBeGreaterThanOrEqual(1);
    expect(metrics.value('genops_requests_total', { decision: 'ALLOWED' })).toBe(40);

    const warnings = service.logs().filter((line) => line.event === 'span_export_failed');
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({ level: 'warn', endpoint: `http://127.0.0.1:${port}` });

    // The collector comes back on the same address: once gRPC has reconnected
    // (its own backoff), spans flow again.
    receiver = await startOtlpReceiver({ port });
    await eventually(async () => {
      await sendChecks(1);
      return receiver!.spans.length > 0;
    }, 'spans to reach the restarted collector', 30_000);
    const after = await scrape(service.adminUrl);
    expect(after.value('genops_spans_exported_total')).toBeGreaterThan(10);
    expect(after.value('genops_spans_exported_total') + after.value('genops_spans_dropped_total')).toBeLessThanOrEqual(after.value('genops_requests_total'));
  });

  it('a hung collector never slows a decision: the bounded queue drops and counts, and shutdown does not wait for it', async () => {
    receiver = await startOtlpReceiver({ mode: 'hang' });
    service = await startService({
      env: tracingEnv(receiver.endpoint, {
        OTEL_BSP_MAX_QUEUE_SIZE: '5',
        OTEL_BSP_MAX_EXPORT_BATCH_SIZE: '5',
        OTEL_BSP_EXPORT_TIMEOUT: '60000',
        OTEL_EXPORTER_OTLP_TIMEOUT: '60000',
      }),
    });
    client = createGovernanceClient(`${service.host}:${service.grpcPort}`);

    const slowest = await sendChecks(40);
    // The export in flight waits 60 s (past the client's 5 s deadline); no decision waited for it.
    expect(slowest).toBeLessThan(1_000);
    await eventually(() => receiver!.exportCalls >= 1, 'an export call to reach the hung collector');

    const metrics = await scrape(service.adminUrl);
    // At most one batch in flight (5) and one queue (5) hold spans; every other span was dropped on arrival.
    expect(metrics.value('genops_spans_dropped_total', { reason: 'queue_full' })).toBeGreaterThanOrEqual(30);
    expect(metrics.value('genops_spans_dropped_total', { reason: 'queue_full' })).toBeLessThanOrEqual(39);
    expect(metrics.value('genops_spans_exported_total')).toBe(0);
    expect(metrics.value('genops_requests_total', { decision: 'ALLOWED' })).toBe(40);

    const started = Date.now();
    expect(await service.stop()).toBe(0);
    expect(Date.now() - started).toBeLessThan(6_000);
  });
});
