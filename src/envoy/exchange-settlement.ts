import type { HeaderLookup } from '../governance/governance-context.js';
import type { Budgeter } from '../governance/budgeting.js';
import type { RateLimiter } from '../governance/rate-limiting.js';
import { isFree, type FinishedExchange, type UsageAccounting } from '../governance/usage-accounting.js';
import type { UsageReporter } from './usage-reporter.js';

export type SettleExchange = (exchange: FinishedExchange, headers: HeaderLookup) => void;

/**
 * What happens once an allowed AI exchange has ended: its usage is priced and
 * recorded, the token rate limits that admitted it are charged its tokens and
 * its budget reservation is settled (an upstream error charges nothing and
 * releases). The ext_proc session calls this exactly once per exchange.
 */
export function createExchangeSettlement(options: { accounting: UsageAccounting; reporter: UsageReporter; rateLimiter?: RateLimiter | undefined; budgeter?: Budgeter | undefined; now: () => number }): SettleExchange {
  const { accounting, reporter, rateLimiter, budgeter, now } = options;
  return (exchange, headers) => {
    const record = accounting.account(exchange);
    if (!record) return;
    reporter.report(record, headers, exchange.startedAt, now());
    // Fire and forget: settle never rejects; backend failures reach the limiter's observer.
    if (rateLimiter && !isFree(record.outcome)) void rateLimiter.settle(exchange.decision, record.tokens);
    // The budgets' reservation becomes the actual cost (an upstream error releases it); never rejects.
    if (budgeter) void budgeter.settle(exchange.decision, record);
  };
}
