import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { llmWire, type RunningService } from '../support/index.js';
import type { GovernanceClient } from '../support/governance-client.js';
import { createServiceGroup } from '../support/service-group.js';
import { scrape } from '../telemetry/telemetry-support.js';

/**
 * Observed metering over real gRPC streams to the running service, played as Envoy plays them:
 * the deciding stream (declared with the x-genops-metering: observed initial metadata) hands an
 * event stream over in its response-headers reply; a second stream in observability_mode, carrying
 * the exchange id as forwarded metadata, is read without replies and ended by the service at the
 * response's end; the usage is recorded exactly once.
 */
describe('observed metering: two gRPC streams, one exchange, one usage record', () => {
  const group = createServiceGroup();
  let service: RunningService;
  let client: GovernanceClient;
  beforeAll(async () => {
    ({ service, client } = await group.start({}));
  });
  afterAll(() => group.stop());

  const headerMap = (headers: Record<string, string>) => ({ headers: Object.entries(headers).map(([key, value]) => ({ key, raw_value: Buffer.from(value) })) });
  const open = (metadata?: grpc.Metadata) =>
    (client.extProc as unknown as { Process(metadata: grpc.Metadata, options: grpc.CallOptions): grpc.ClientDuplexStream<unknown, Record<string, unknown>> }).Process(metadata ?? new grpc.Metadata(), { deadline: Date.now() + 10_000 });
  /** Writes `message` and waits for the one reply. */
  const exchange = (call: grpc.ClientDuplexStream<unknown, Record<string, unknown>>, message: unknown) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      call.once('data', resolve);
      call.once('error', reject);
      call.write(message);
    });
  const records = async () => (await scrape(service.adminUrl)).value('genops_usage_records_total');

  it('claims the stream by the exchange id, reads it without replying, ends it at the response end, and records the usage once', async () => {
    const before = await records();
    const metadata = new grpc.Metadata();
    metadata.set('x-genops-metering', 'observed');
    const decider = open(metadata);
    onTestFinished(() => decider.cancel());
    const context = { 'x-genops-team': 'ml-platform', 'x-genops-customer-id': 'observed-1', 'x-genops-project': 'chatbot' };
    await exchange(decider, { request_headers: { headers: headerMap({ ':method': 'POST', ':path': '/v1/chat/completions', ...context }) } });
    const body = JSON.stringify({ model: 'gpt-4o-mini', stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: 'Hi' }] });
    await exchange(decider, { request_body: { body: Buffer.from(body), end_of_stream: true } });
    const handOver = await exchange(decider, { response_headers: { headers: headerMap({ ':status': '200', 'content-type': 'text/event-stream' }) } });
    const fields = (handOver.dynamic_metadata as { fields: Record<string, { structValue: { fields: Record<string, { stringValue: string }> } }> }).fields;
    const exchangeId = fields.genops!.structValue.fields.exchange_id!.stringValue;
    expect(exchangeId).toBeTruthy();
    expect(handOver.mode_override).toMatchObject({ response_body_mode: 0 }); // NONE: the body goes to the metering stream only

    const meter = open();
    const replies: unknown[] = [];
    meter.on('data', (reply) => replies.push(reply));
    const ended = new Promise<void>((resolve, reject) => {
      meter.on('status', (status: grpc.StatusObject) => (status.code === grpc.status.OK ? resolve() : reject(new Error(status.details))));
      meter.on('error', reject);
    });
    const forwarded = { filter_metadata: { genops: { fields: { exchange_id: { stringValue: exchangeId } } } } };
    const sse = Buffer.from(llmWire.openAiChatSse({ model: 'gpt-4o-mini', usage: { input: 12, cachedInput: 0, cacheWrite: 0, output: 7, reasoning: 0 }, text: 'Hello there', includeUsage: true }));
    meter.write({ observability_mode: true, metadata_context: forwarded, response_headers: { headers: headerMap({ ':status': '200', 'content-type': 'text/event-stream' }) } });
    meter.write({ observability_mode: true, metadata_context: forwarded, response_body: { body: sse.subarray(0, 50) } });
    meter.write({ observability_mode: true, metadata_context: forwarded, response_body: { body: sse.subarray(50), end_of_stream: true } });
    await ended; // the service ended the call itself: no wait for Envoy's deferred close
    expect(replies).toEqual([]);
    decider.cancel(); // Envoy resets the deciding stream at the end of the HTTP stream

    await expect.poll(records, { timeout: 5_000 }).toBe(before + 1);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(await records()).toBe(before + 1);
    expect((await scrape(service.adminUrl)).value('genops_metering_unmatched_total')).toBe(0);
  });
});
