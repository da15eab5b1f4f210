import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { createDecisionEngine } from '../../src/governance/decision-engine.js';
import { createMemoryBudgetLedger } from '../../src/limits/memory-budget-ledger.js';
import { loadPolicyFile } from '../../src/policy/policy-store.js';
import { DEFAULT_POLICY_PATH } from '../../src/policy/default-policy.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

describe('decision ids', () => {
  it('are UUIDs, and one the memory ledger remembers as settled costs ~110 bytes of heap, not the ~530 of a crypto.randomUUID string as built', () => {
    const policy = loadPolicyFile(DEFAULT_POLICY_PATH);
    const engine = createDecisionEngine({ policy: () => policy });
    const headers = { 'x-genops-team': 'ml-platform', 'x-genops-customer-id': 'acme', 'x-genops-project': 'chatbot' } as Record<string, string>;
    const now = Date.UTC(2026, 11, 5);
    const ledger = createMemoryBudgetLedger({ clock: () => now });
    const account = { id: 'ml-budget|ml-platform', limit: 1e15, period: { kind: 'calendar' as const, startMs: Date.UTC(2026, 11, 1), endMs: Date.UTC(2027, 0, 1) } };
    const count = 50_000;
    gc();
    const before = process.memoryUsage().heapUsed;
    for (let i = 0; i < count; i++) {
      const { id } = engine.decide({ headers: (name) => headers[name] });
      if (i === 0) expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      ledger.reserve({ reservationId: id, entries: [{ account, amount: 10 }], expiresAtMs: now + 900_000 });
      ledger.settle({ reservationId: id, entries: [{ account, actual: 5 }] });
    }
    gc();
    const perId = (process.memoryUsage().heapUsed - before) / count;
    expect(ledger.size().settledIds).toBe(count);
    // At the ledger's default bound of a million remembered ids: ~110 MB instead of ~530 MB.
    expect(perId).toBeLessThan(250);
  });
});
