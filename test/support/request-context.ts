import { randomUUID } from 'node:crypto';

export const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * Governance headers the default policy allows, with a fresh customer id each
 * call (so each test gets its own rate-limit bucket); `undefined` removes one.
 */
export function context(overrides: Record<string, string | undefined> = {}): Record<string, string> {
  const headers: Record<string, string | undefined> = {
    'x-genops-team': 'ml-platform',
    'x-genops-customer-id': `cust-${randomUUID().slice(0, 8)}`,
    'x-genops-project': 'support-bot',
    ...overrides,
  };
  return Object.fromEntries(Object.entries(headers).filter((entry): entry is [string, string] => entry[1] !== undefined));
}
