import type { HeaderLookup } from '../governance/governance-context.js';
import type { FinishedExchange, UsageAccounting } from '../governance/usage-accounting.js';
import type { UsageReporter } from './usage-reporter.js';

export type SettleExchange = (exchange: FinishedExchange, headers: HeaderLookup) => void;

/**
 * What happens once an allowed AI exchange has ended: its usage is priced and
 * recorded. The ext_proc session calls this exactly once per exchange.
 */
export function createExchangeSettlement(options: { accounting: UsageAccounting; reporter: UsageReporter; now: () => number }): SettleExchange {
  const { accounting, reporter, now } = options;
  return (exchange, headers) => {
    const record = accounting.account(exchange);
    if (record) reporter.report(record, headers, exchange.startedAt, now());
  };
}
