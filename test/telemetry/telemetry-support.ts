/**
 * Shared pieces of the telemetry tests: a service with tracing pointed at a
 * test OTLP receiver, ext_proc exchanges over the real gRPC stream, and a
 * parser for the Prometheus text format.
 */
import type * as grpc from '@grpc/grpc-js';
import type { ProcessingRequest } from '../../src/envoy/envoy-messages.js';
import { aiRequestBody, type GovernanceClient } from '../support/governance-client.js';
import { writePolicyFile } from '../support/service-group.js';

/** Environment that turns tracing on with a fast batch, exporting to `endpoint`. */
export function tracingEnv(endpoint: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    OTEL_SDK_DISABLED: 'false',
    OTEL_EXPORTER_OTLP_ENDPOINT: endpoint,
    OTEL_BSP_SCHEDULE_DELAY: '20',
    ...extra,
  };
}

/** A policy for the telemetry tests: every decision kind is one request away. */
export const TELEMETRY_POLICY = `apiVersion: genops.ai/v1alpha1
kind: GovernancePolicy
metadata: { name: telemetry-test }
spec:
  mode: enforce
  context: { required: [team, customerId, project] }
  routes:
    byTier: { premium: claude-opus, standard: claude-haiku }
    default: claude-sonnet
  tiers:
    basic: { models: [claude-haiku, claude-sonnet] }
  teams:
    ml-platform: { models: ["*"] }
    product-team: { models: [claude-haiku, claude-sonnet] }
    ml-research: { models: [claude-sonnet], mode: dry-run }
  rateLimits:
    - name: tiny
      key: [customerId]
      capacity: 2
      refill: { amount: 1, every: 3600s }
      selector: { teams: [product-team] }
  budgets:
    # Only ext_proc can reserve and settle: Check (ext_authz) refuses what an enforced budget selects
    # (x_ext_proc_required), so the budget selects the traffic these tests send through ext_proc only.
    - name: team-monthly
      key: [team]
      amount: 100
      period: monthly
      warnAt: 80
      selector: { projects: [budgeted-chat] }
`;

export function writePolicy(text = TELEMETRY_POLICY): string {
  return writePolicyFile(text, 'genops-telemetry-');
}

/** The reply to request headers as the client decodes it (any of the oneof's members may be present). */
export interface ExtProcReply {
  readonly request_headers?: { readonly response?: { readonly header_mutation?: { readonly set_headers?: unknown[] } } };
  /** On an AI API path the decision's mutations come with the reply to the body. */
  readonly request_body?: { readonly response?: { readonly header_mutation?: { readonly set_headers?: unknown[] } } };
  readonly immediate_response?: { readonly status?: { readonly code?: number }; readonly body?: Buffer };
}

/**
 * One ext_proc exchange up to the decision: the request headers, and on an AI API path (POST)
 * the request body too (a Chat Completions body naming x-genops-model, or claude-sonnet-4-5).
 * Resolves with the reply that carries the decision.
 */
export function extProcDecide(client: GovernanceClient, headers: Record<string, string>): Promise<ExtProcReply> {
  const stream = (client.extProc as unknown as { Process(): grpc.ClientDuplexStream<ProcessingRequest, ExtProcReply> }).Process();
  const withBody = headers[':method'] === 'POST' && /\/v1\/(chat\/completions|responses|embeddings|messages)(\?|$)/.test(headers[':path'] ?? '');
  return new Promise((resolve, reject) => {
    stream.on('data', (reply: ExtProcReply) => {
      if (withBody && (reply as { request_headers?: unknown }).request_headers) {
        stream.write({ request_body: { body: aiRequestBody(headers['x-genops-model'], headers[':path']), end_of_stream: true } });
        return;
      }
      resolve(reply);
      stream.cancel();
    });
    stream.on('error', (error: grpc.ServiceError) => {
      if (error.code !== 1) reject(error); // 1 = CANCELLED, our own cancel above
    });
    stream.write({
      request_headers: {
        headers: { headers: Object.entries(headers).map(([key, value]) => ({ key, raw_value: Buffer.from(value) })) },
        end_of_stream: !withBody,
      },
    });
  });
}

/**
 * One whole ext_proc exchange of an AI request, as Envoy sends it with the shipped config: request
 * headers, the request body, response headers, then the response body in `chunks`. Resolves with
 * every reply, in order.
 */
export function extProcExchange(client: GovernanceClient, exchange: { headers: Record<string, string>; body: string; status?: number; contentType: string; chunks: readonly string[] }): Promise<ExtProcReply[]> {
  const stream = (client.extProc as unknown as { Process(): grpc.ClientDuplexStream<ProcessingRequest, ExtProcReply> }).Process();
  const headerMap = (headers: Record<string, string>) => ({ headers: Object.entries(headers).map(([key, value]) => ({ key, raw_value: Buffer.from(value) })) });
  const messages: ProcessingRequest[] = [
    { request_headers: { headers: headerMap({ ':method': 'POST', ...exchange.headers }) } },
    { request_body: { body: Buffer.from(exchange.body), end_of_stream: true } },
    { response_headers: { headers: headerMap({ ':status': String(exchange.status ?? 200), 'content-type': exchange.contentType }) } },
    ...exchange.chunks.map((chunk, index): ProcessingRequest => ({ response_body: { body: Buffer.from(chunk), end_of_stream: index === exchange.chunks.length - 1 } })),
  ];
  const replies: ExtProcReply[] = [];
  return new Promise((resolve, reject) => {
    stream.on('data', (reply: ExtProcReply) => {
      replies.push(reply);
      const next = messages[replies.length];
      if (next && !(reply as { immediate_response?: unknown }).immediate_response) {
        stream.write(next);
        return;
      }
      resolve(replies);
      stream.end();
    });
    stream.on('error', (error: grpc.ServiceError) => {
      if (error.code !== 1) reject(error);
    });
    stream.write(messages[0]!);
  });
}

export interface Sample {
  readonly name: string;
  readonly labels: Record<string, string>;
  readonly value: number;
}

export interface Scrape {
  readonly samples: Sample[];
  /** Metric family name → type (counter, gauge, histogram, summary, untyped). */
  readonly types: Map<string, string>;
  /** Sum of the samples named `name` whose labels include `labels`. */
  value(name: string, labels?: Record<string, string>): number;
  /** The samples named `name` whose labels include `labels`. */
  find(name: string, labels?: Record<string, string>): Sample[];
}

export async function scrape(adminUrl: string): Promise<Scrape> {
  const response = await fetch(`${adminUrl}/metrics`);
  if (response.status !== 200) throw new Error(`/metrics answered ${response.status}`);
  return parsePrometheusText(await response.text());
}

/** Parses the Prometheus text exposition format (version 0.0.4). */
export function parsePrometheusText(text: string): Scrape {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    if (line.startsWith('#')) {
      const match = /^# TYPE (\S+) (\S+)$/.exec(line);
      if (match) types.set(match[1]!, match[2]!);
      continue;
    }
    samples.push(parseSample(line));
  }
  const find = (name: string, labels: Record<string, string> = {}) =>
    samples.filter((sample) => sample.name === name && Object.entries(labels).every(([key, value]) => sample.labels[key] === value));
  return { samples, types, find, value: (name, labels) => find(name, labels).reduce((sum, sample) => sum + sample.value, 0) };
}

function parseSample(line: string): Sample {
  const nameMatch = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(line);
  if (!nameMatch) throw new Error(`not a sample line: ${line}`);
  const name = nameMatch[0];
  let index = name.length;
  const labels: Record<string, string> = {};
  if (line[index] === '{') {
    index++;
    while (line[index] !== '}') {
      const labelMatch = /^\s*([a-zA-Z_][a-zA-Z0-9_]*)="/.exec(line.slice(index));
      if (!labelMatch) throw new Error(`bad label at ${index} in: ${line}`);
      index += labelMatch[0].length;
      let value = '';
      while (line[index] !== '"') {
        if (line[index] === '\\') {
          const escaped = line[index + 1];
          value += escaped === 'n' ? '\n' : escaped;
          index += 2;
        } else {
          value += line[index];
          index++;
        }
        if (index >= line.length) throw new Error(`unterminated label value in: ${line}`);
      }
      labels[labelMatch[1]!] = value;
      index++;
      if (line[index] === ',') index++;
    }
    index++;
  }
  const [valueText] = line.slice(index).trim().split(/\s+/);
  const value = valueText === '+Inf' ? Infinity : valueText === '-Inf' ? -Infinity : Number(valueText);
  // prom-client writes NaN as "Nan" (e.g. nodejs_eventloop_lag_mean_seconds before any sample).
  if (Number.isNaN(value) && valueText?.toLowerCase() !== 'nan') throw new Error(`bad value in: ${line}`);
  return { name, labels, value };
}

export async function eventually<T>(probe: () => Promise<T | undefined | false> | T | undefined | false, what: string, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const result = await probe();
    if (result !== undefined && result !== false) return result;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** A W3C traceparent with fresh random ids. */
export function newTraceparent(sampled = true): { traceparent: string; traceId: string; spanId: string } {
  const traceId = randomHex(16);
  const spanId = randomHex(8);
  return { traceparent: `00-${traceId}-${spanId}-${sampled ? '01' : '00'}`, traceId, spanId };
}

export function randomHex(bytes: number): string {
  return Buffer.from(crypto.getRandomValues(new Uint8Array(bytes))).toString('hex');
}
