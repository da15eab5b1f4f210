/**
 * What the priced e2e suites (envoy-usage, envoy-provider-shapes, envoy-budget-bound) share: the exact expected cost
 * of a usage at the test policy's prices, and the stub LLM behind the real Envoy for one describe.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { startGovernanceStack, startStubLlm, type GovernanceStack, type StartStubLlmOptions, type StubLlm } from '../support/index.js';
import { writeDefaultPolicy } from '../support/default-policy.js';

/** USD per million tokens, as the policy's pricing.models take them. */
export type TestPrices = Readonly<Record<string, { input: string; cachedInput?: string; cacheWrite?: string; output: string }>>;

export interface Usage { input: number; cachedInput?: number; cacheWrite?: number; output: number; reasoning?: number }

/** Exact expected cost in pico-USD (USD per million tokens = pico-USD per token × 1e-6 × 1e6). */
export function expectedPico(prices: TestPrices, pattern: string, usage: Usage): bigint {
  const price = prices[pattern]!;
  const pico = (usd: string | undefined, fallback: string) => {
    const [whole, fraction = ''] = (usd ?? fallback).split('.');
    return BigInt(whole!) * 1_000_000n + BigInt((fraction + '000000').slice(0, 6));
  };
  const cached = BigInt(usage.cachedInput ?? 0);
  const written = BigInt(usage.cacheWrite ?? 0);
  const uncached = BigInt(usage.input) - cached - written;
  return uncached * pico(price.input, '0') + cached * pico(price.cachedInput, price.input) + written * pico(price.cacheWrite, price.input) + BigInt(usage.output) * pico(price.output, '0');
}

export function picoToDecimal(pico: bigint): string {
  const whole = pico / 1_000_000_000_000n;
  const fraction = (pico % 1_000_000_000_000n).toString().padStart(12, '0').replace(/0+$/, '');
  return fraction ? `${whole}.${fraction}` : `${whole}`;
}

export interface LlmStack { llm: StubLlm; stack: GovernanceStack }

/**
 * Registers beforeAll/afterAll that run the stub LLM behind the real Envoy in `mode`, with the
 * default policy edited by `editPolicy`; the returned getter throws when the stack is not running.
 */
export function useLlmStack(mode: 'ext-proc' | 'ext-authz', options: { prefix: string; editPolicy: (spec: Record<string, unknown>) => void; stub: StartStubLlmOptions; serviceEnv?: Record<string, string> }): () => LlmStack {
  let llm: StubLlm | undefined;
  let stack: GovernanceStack | undefined;
  let dir: string | undefined;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), options.prefix));
    const policyPath = writeDefaultPolicy(dir, 'policy.yaml', options.editPolicy);
    llm = await startStubLlm(options.stub);
    stack = await startGovernanceStack({ mode, upstreamPort: llm.port, policyPath, ...(options.serviceEnv ? { serviceEnv: options.serviceEnv } : {}) });
  });
  afterAll(async () => {
    await stack?.stop();
    await llm?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });
  return () => {
    if (!llm || !stack) throw new Error('stack not running');
    return { llm, stack };
  };
}
