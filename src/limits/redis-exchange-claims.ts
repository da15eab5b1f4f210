import type { RedisClient } from './redis-connection.js';
import type { ClaimOutcome, ExchangeClaims } from './exchange-claims.js';

const SETTLED = 'settled';

const CLAIM = `
local held = redis.call('GET', KEYS[1])
if not held then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 'won' end
if held == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 'won' end
if held == '${SETTLED}' then return 'settled' end
return 'taken'`;

const FINALIZE = `
local held = redis.call('GET', KEYS[1])
if not held or held == ARGV[1] then redis.call('SET', KEYS[1], '${SETTLED}', 'PX', ARGV[2]) return 'won' end
if held == '${SETTLED}' then return 'settled' end
return 'taken'`;

/**
 * Exchange claims in Redis (one node or a Cluster: one key per exchange, each script touches only
 * it). Owners are opaque strings other than "settled". Rejects when Redis does not answer.
 */
export function createRedisExchangeClaims(options: { client: RedisClient; keyPrefix?: string }): ExchangeClaims {
  const { client } = options;
  const keyPrefix = options.keyPrefix ?? 'genops:exchange';
  const keyOf = (exchangeId: string) => `${keyPrefix}:{${exchangeId}}:claim`;
  const run = async (script: string, exchangeId: string, owner: string, ms: number): Promise<ClaimOutcome> => {
    if (owner === SETTLED) throw new RangeError(`an exchange claim owner cannot be "${SETTLED}"`);
    return (await client.eval(script, 1, keyOf(exchangeId), owner, String(Math.max(1, Math.ceil(ms))))) as ClaimOutcome;
  };
  return {
    claim: (exchangeId, owner, ttlMs) => run(CLAIM, exchangeId, owner, ttlMs),
    finalize: (exchangeId, owner, retainMs) => run(FINALIZE, exchangeId, owner, retainMs),
  };
}
