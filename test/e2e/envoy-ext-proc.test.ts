/**
 * genops-mesh as Envoy's ext_proc service, through the real Envoy booted with
 * deploy/envoy/ext-proc.yaml and the default policy.
 */
import { createHash, randomUUID } from 'node:crypto';
import { Agent } from 'node:http';
import { describe, expect, it } from 'vitest';
import type { EchoBody } from '../support/index.js';
import {
  context,
  describeGovernanceDecisions,
  describePeerPrincipal,
  describeShutdownAndFailClosed,
  expectedRoute,
  streamEvent,
  useEnvoyStack,
  UUID,
} from './envoy-scenarios.js';

describe('ext_proc: genops-mesh behind the real Envoy', () => {
  const envoy = useEnvoyStack('ext-proc');
  describeGovernanceDecisions(envoy);

  describe('bodies and streams (headers-only processing)', () => {
    it('passes a JSON request body through untouched', async () => {
      const testId = randomUUID();
      const body = JSON.stringify({
        model: 'claude-sonnet',
        max_tokens: 512,
        messages: Array.from({ length: 200 }, (_, index) => ({ role: index % 2 ? 'assistant' : 'user', content: `turn ${index}: ${'lorem ipsum '.repeat(20)}` })),
      });
      const response = await envoy.send(testId, '/v1/chat/completions', {
        method: 'POST',
        headers: { ...context({ 'x-genops-customer-tier': 'standard' }), 'content-type': 'application/json' },
        body,
      });

      expect(response.status, response.body).toBe(200);
      const [received] = envoy.received(testId);
      expect(received?.method).toBe('POST');
      expect(received?.headers['content-type']).toBe('application/json');
      expect(received?.body).toBe(body);
      expect(received?.headers['x-genops-route']).toBe('claude-haiku');
    });

    it('passes a large streamed response through untouched, with the decision id on its headers', async () => {
      const testId = randomUUID();
      const events = 500; // about 2 MB, in bursts
      const response = await envoy.send(testId, `/v1/stream?events=${events}`, { headers: context() });

      expect(response.status).toBe(200);
      expect(response.header('content-type')).toBe('text/event-stream');
      const expected = Array.from({ length: events }, (_, index) => streamEvent(index)).join('');
      expect(response.body.length).toBe(expected.length);
      expect(createHash('sha256').update(response.body).digest('hex')).toBe(createHash('sha256').update(expected).digest('hex'));
      expect(response.header('x-genops-decision-id')).toBe(envoy.received(testId)[0]?.headers['x-genops-decision-id']);
    });
  });

  describe('concurrency', () => {
    it('decides 200 concurrent requests each on its own headers (no cross-talk between streams)', async () => {
      const teams = ['ml-platform', 'product-team', 'ml-research', 'data-science'];
      const tiers = ['premium', 'standard', 'basic', undefined];
      const agent = new Agent({ keepAlive: true, maxSockets: 50 });
      try {
        const requests = Array.from({ length: 200 }, (_, index) => {
          const team = teams[index % teams.length]!;
          const tier = tiers[Math.floor(index / teams.length) % tiers.length];
          const testId = randomUUID();
          const headers = context({ 'x-genops-team': team, 'x-genops-customer-tier': tier, 'x-genops-customer-id': `conc-${index}-${testId.slice(0, 6)}` });
          return { team, tier, testId, headers, response: envoy.send(testId, `/v1/messages?i=${index}`, { headers, agent, method: 'POST', body: JSON.stringify({ model: 'claude-haiku-4-5', max_tokens: 32, messages: [{ role: 'user', content: `request ${index}` }] }) }) };
        });
        const decisionIds = new Set<string>();
        for (const { team, tier, testId, headers, response } of requests) {
          const answer = await response;
          expect(answer.status, answer.body).toBe(200);
          const echoed = answer.json<EchoBody>();
          const route = expectedRoute(team, tier);
          expect(echoed.headers).toMatchObject({
            'x-test-id': testId,
            'x-genops-team': team,
            'x-genops-customer-id': headers['x-genops-customer-id'],
            'x-genops-route': route,
            'x-routed-by': route,
          });
          expect(echoed.headers['x-genops-customer-tier']).toBe(tier);
          const decisionId = answer.header('x-genops-decision-id');
          expect(decisionId).toMatch(UUID);
          expect(echoed.headers['x-genops-decision-id']).toBe(decisionId);
          decisionIds.add(decisionId!);
          expect(envoy.received(testId)).toHaveLength(1);
        }
        expect(decisionIds.size).toBe(200);
      } finally {
        agent.destroy();
      }
    });
  });

  // Envoy's default is 500 for an unreachable processor; the config sets status_on_error 503.
  // A message_timeout (0.2 s) expiry is always 504: status_on_error does not apply to it.
  describeShutdownAndFailClosed(envoy, { hung: 504, unreachable: 503 });
});

describe('ext_proc: genops-mesh behind the real Envoy with mTLS', () => {
  describePeerPrincipal('ext-proc');
});
