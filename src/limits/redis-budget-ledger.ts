import type { Redis } from 'ioredis';
import { GenopsError } from '../errors/genops-error.js';
import {
  ACCOUNT_GRACE_MS,
  DEFAULT_SETTLED_RETENTION_MAX_MS,
  accountStorageKey,
  assertAccounts,
  assertRenewRequest,
  assertReserveRequest,
  assertSettleRequest,
  slotIndexAt,
  spendRelevantUntilMs,
} from './budget-account.js';
import type { AccountState, BudgetAccount, BudgetLedger, RenewRequest, RenewResult, ReserveRequest, ReserveResult, SettleRequest, SettleResult } from './budget-ledger.js';

export interface RedisBudgetLedgerOptions {
  /** A connection from connectRedis (command timeout, no offline queue), so no call can hang. */
  readonly client: Redis;
  /** Milliseconds since the epoch; the replica's clock, passed to the scripts. */
  readonly clock: () => number;
  /** Prefix of every key, which is also their one hash tag. Default "genops:budget". */
  readonly keyPrefix?: string;
  /** Longest a settled id is remembered past its reservation's expiry. Default 24 h. */
  readonly settledRetentionMaxMs?: number;
}

export interface RedisBudgetLedger extends BudgetLedger {
  reserve(request: ReserveRequest): Promise<ReserveResult>;
  settle(request: SettleRequest): Promise<SettleResult>;
  renew(request: RenewRequest): Promise<RenewResult>;
  state(accounts: readonly BudgetAccount[]): Promise<readonly AccountState[]>;
}

/*
 * Storage, per account (its storage key carries the period: a calendar
 * period's start, a rolling window's slot width):
 *   <tag>:acct:<account>   HASH  spent (calendar) · reserved (sum of live holds) · h:<reservation id> → amount
 *   <tag>:exp:<account>    ZSET  reservation id by expiry (ms): expired holds are purged from both
 *                                whenever a script touches the account, before anything is read
 *   <tag>:slots:<account>  HASH  rolling windows: slot index → settled spend; slots older than the
 *                                window are deleted as they are read
 * and per reservation:
 *   <tag>:rsv:<id>         STRING  its expiry while held; "s" once settled (kept for the retention)
 * Account keys expire a day (ACCOUNT_GRACE_MS) after the later of the period's end (rolling: the
 * window from the last write) and their last hold's expiry.
 *
 * Every key shares one hash tag, "{<keyPrefix>}": a script may only touch the keys of one Redis
 * Cluster slot, and a request's accounts are an arbitrary mix of budgets (a team's, a project's, a
 * customer's), so no per-account tag could place them together. Budget accounts are few (configured
 * budgets × key values) and each request costs one script call, which one shard serves at
 * ~10^5/s; the per-customer rate limits, which are hot and many, keep their own per-bucket tags.
 *
 * Time: the scripts use the calling replica's clock (ARGV), as the rate-limit scripts do, so tests
 * can inject time; TTLs are set relative to it (PX / PEXPIRE), so Redis's own clock does not matter.
 * Replicas whose clocks differ by d ms disagree by d about when a calendar period or a rolling slot
 * turns over, and a replica ahead by d releases another's hold d ms before its expiry: keep
 * reservation lifetimes (minutes) far above the skew (NTP keeps it to milliseconds). Amounts are
 * never in doubt: every check and change of a request happens inside one script.
 *
 * Redis must not evict these keys (maxmemory-policy noeviction or volatile-*, with room): an evicted
 * account starts again from zero.
 */

const LUA_HELPERS = `
local function fmt(n) return string.format('%.0f', n) end

-- Drops the account's holds that expired by now; returns the live reserved total.
local function purge(acct, exp, now)
  local reserved = tonumber(redis.call('HGET', acct, 'reserved') or '0')
  local changed = false
  while true do
    local gone = redis.call('ZRANGEBYSCORE', exp, '-inf', string.format('%.17g', now), 'LIMIT', 0, 256)
    if #gone == 0 then break end
    local fields = {}
    for j = 1, #gone do fields[j] = 'h:' .. gone[j] end
    local amounts = redis.call('HMGET', acct, unpack(fields))
    for j = 1, #amounts do
      if amounts[j] then reserved = reserved - tonumber(amounts[j]) end
    end
    redis.call('HDEL', acct, unpack(fields))
    redis.call('ZREM', exp, unpack(gone))
    changed = true
    if #gone < 256 then break end
  end
  if changed then redis.call('HSET', acct, 'reserved', fmt(reserved)) end
  return reserved
end

-- Settled spend in the period (calendar) or the window's slots (rolling), dropping stale slots.
local function spent_of(acct, slots_key, kind, slot, slot_count)
  if kind == 'c' then return tonumber(redis.call('HGET', acct, 'spent') or '0') end
  local all = redis.call('HGETALL', slots_key)
  local oldest = slot - slot_count + 1
  local sum = 0
  local stale = {}
  for j = 1, #all, 2 do
    if tonumber(all[j]) < oldest then stale[#stale + 1] = all[j] else sum = sum + tonumber(all[j + 1]) end
  end
  if #stale > 0 then redis.call('HDEL', slots_key, unpack(stale)) end
  return sum
end

-- Keeps the account's keys until a grace period after the spend stops mattering and after its last hold.
local function keep(acct, exp, slots_key, kind, now, relevant_until, grace)
  local last = redis.call('ZRANGE', exp, -1, -1, 'WITHSCORES')
  local until_ms = relevant_until
  if last[2] and tonumber(last[2]) > until_ms then until_ms = tonumber(last[2]) end
  local ttl = fmt(math.max(1000, until_ms + grace - now))
  redis.call('PEXPIRE', acct, ttl)
  redis.call('PEXPIRE', exp, ttl)
  if kind == 'r' then redis.call('PEXPIRE', slots_key, ttl) end
end
`;

/**
 * KEYS: the reservation's key, then per account: acct, exp, slots.
 * ARGV: now, reservation id, expiresAtMs, grace, then per account: kind (c|r), limit, amount,
 * current slot, slot count, relevant-until.
 * Returns {-1} for a reused id; else {ok (1|0), failed index (1-based, 0 if ok), then per account
 * spent, reserved}: after reserving when ok, as found otherwise.
 */
const RESERVE_SCRIPT = `${LUA_HELPERS}
local now = tonumber(ARGV[1])
local rid = ARGV[2]
local expires = tonumber(ARGV[3])
local grace = tonumber(ARGV[4])
local n = (#KEYS - 1) / 3
local hold = 'h:' .. rid
if redis.call('EXISTS', KEYS[1]) == 1 then return {-1} end
for i = 1, n do
  if redis.call('HEXISTS', KEYS[3 * i - 1], hold) == 1 then return {-1} end
end
local states = {}
local failed = 0
for i = 1, n do
  local a = 4 + (i - 1) * 6
  local reserved = purge(KEYS[3 * i - 1], KEYS[3 * i], now)
  local spent = spent_of(KEYS[3 * i - 1], KEYS[3 * i + 1], ARGV[a + 1], tonumber(ARGV[a + 4]), tonumber(ARGV[a + 5]))
  states[2 * i - 1] = spent
  states[2 * i] = reserved
  if failed == 0 and spent + reserved + tonumber(ARGV[a + 3]) > tonumber(ARGV[a + 2]) then failed = i end
end
if failed > 0 then return {0, failed, unpack(states)} end
for i = 1, n do
  local a = 4 + (i - 1) * 6
  local acct, exp = KEYS[3 * i - 1], KEYS[3 * i]
  local reserved = states[2 * i] + tonumber(ARGV[a + 3])
  redis.call('HSET', acct, hold, ARGV[a + 3], 'reserved', fmt(reserved))
  redis.call('ZADD', exp, ARGV[3], rid)
  keep(acct, exp, KEYS[3 * i + 1], ARGV[a + 1], now, tonumber(ARGV[a + 6]), grace)
  states[2 * i] = reserved
end
redis.call('SET', KEYS[1], ARGV[3], 'PX', fmt(expires - now))
return {1, 0, unpack(states)}
`;

/**
 * KEYS: the reservation's key, then per account: acct, exp, slots.
 * ARGV: now, reservation id, retention cap, grace, then per account: kind (c|r), actual,
 * current slot, slot count, relevant-until.
 * Returns {applied (1|0), expired (1|0), then per account spent, reserved}.
 */
const SETTLE_SCRIPT = `${LUA_HELPERS}
local now = tonumber(ARGV[1])
local rid = ARGV[2]
local retention_cap = tonumber(ARGV[3])
local grace = tonumber(ARGV[4])
local n = (#KEYS - 1) / 3
local hold = 'h:' .. rid
local marker = redis.call('GET', KEYS[1])
local states = {}
if marker == 's' then
  for i = 1, n do
    local a = 4 + (i - 1) * 5
    states[2 * i] = purge(KEYS[3 * i - 1], KEYS[3 * i], now)
    states[2 * i - 1] = spent_of(KEYS[3 * i - 1], KEYS[3 * i + 1], ARGV[a + 1], tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4]))
  end
  return {0, 0, unpack(states)}
end
local held = false
local base = now
if marker and tonumber(marker) > base then base = tonumber(marker) end
local wanted = base
for i = 1, n do
  local a = 4 + (i - 1) * 5
  local acct, exp, slots_key, kind = KEYS[3 * i - 1], KEYS[3 * i], KEYS[3 * i + 1], ARGV[a + 1]
  local reserved = purge(acct, exp, now)
  local amount = redis.call('HGET', acct, hold)
  if amount then
    reserved = reserved - tonumber(amount)
    redis.call('HDEL', acct, hold)
    redis.call('ZREM', exp, rid)
    redis.call('HSET', acct, 'reserved', fmt(reserved))
    held = true
  end
  if kind == 'c' then
    redis.call('HINCRBY', acct, 'spent', ARGV[a + 2])
  else
    redis.call('HINCRBY', slots_key, ARGV[a + 3], ARGV[a + 2])
  end
  local relevant_until = tonumber(ARGV[a + 5])
  keep(acct, exp, slots_key, kind, now, relevant_until, grace)
  if relevant_until > wanted then wanted = relevant_until end
  states[2 * i - 1] = spent_of(acct, slots_key, kind, tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4]))
  states[2 * i] = reserved
end
local remember_until = math.min(wanted, base + retention_cap)
redis.call('SET', KEYS[1], 's', 'PX', fmt(math.max(1000, remember_until - now)))
local expired = 1
if held then expired = 0 end
return {1, expired, unpack(states)}
`;

/**
 * KEYS: the reservation's key, then per account: acct, exp, slots. ARGV: now, reservation id,
 * expiresAtMs, grace. Returns 1 when the reservation was live (its holds now expire at
 * expiresAtMs, or later if they already did), 0 when it was settled, expired or never reserved.
 */
const RENEW_SCRIPT = `${LUA_HELPERS}
local now = tonumber(ARGV[1])
local rid = ARGV[2]
local expires = tonumber(ARGV[3])
local grace = tonumber(ARGV[4])
local marker = redis.call('GET', KEYS[1])
if (not marker) or marker == 's' or tonumber(marker) <= now then return 0 end
if tonumber(marker) >= expires then return 1 end
local hold = 'h:' .. rid
local want = expires + grace - now
for i = 1, (#KEYS - 1) / 3 do
  local acct, exp, slots_key = KEYS[3 * i - 1], KEYS[3 * i], KEYS[3 * i + 1]
  purge(acct, exp, now)
  if redis.call('HEXISTS', acct, hold) == 1 then
    redis.call('ZADD', exp, ARGV[3], rid)
    for _, key in ipairs({acct, exp, slots_key}) do
      local ttl = redis.call('PTTL', key)
      if ttl >= 0 and ttl < want then redis.call('PEXPIRE', key, fmt(want)) end
    end
  end
end
redis.call('SET', KEYS[1], ARGV[3], 'PX', fmt(expires - now))
return 1
`;

/**
 * KEYS per account: acct, exp, slots. ARGV: now, then per account: kind, current slot, slot count.
 * Returns per account spent, reserved. Writes only to purge what expired.
 */
const STATE_SCRIPT = `${LUA_HELPERS}
local now = tonumber(ARGV[1])
local states = {}
for i = 1, #KEYS / 3 do
  local a = 1 + (i - 1) * 3
  states[2 * i] = purge(KEYS[3 * i - 2], KEYS[3 * i - 1], now)
  states[2 * i - 1] = spent_of(KEYS[3 * i - 2], KEYS[3 * i], ARGV[a + 1], tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3]))
end
return states
`;

type ScriptCommand = (numKeys: number, ...args: (string | number)[]) => Promise<number[]>;

/**
 * The budget ledger shared by every replica through Redis: one atomic
 * script per reserve and one per settle across all of a request's accounts
 * (EVALSHA of scripts loaded on connect, EVAL on NOSCRIPT). Any Redis error
 * or timeout rejects with GenopsError('backend_unavailable'); the caller
 * applies each budget's failure mode. A call that timed out may still have
 * been applied: a reserve then holds until its expiry, a settle is safe to
 * repeat (exactly once per reservation id).
 */
export function createRedisBudgetLedger(options: RedisBudgetLedgerOptions): RedisBudgetLedger {
  const { client, clock } = options;
  const keyPrefix = options.keyPrefix ?? 'genops:budget';
  const settledRetentionMaxMs = options.settledRetentionMaxMs ?? DEFAULT_SETTLED_RETENTION_MAX_MS;
  const tag = `{${keyPrefix}}`;
  client.defineCommand('genopsBudgetReserve', { lua: RESERVE_SCRIPT });
  client.defineCommand('genopsBudgetSettle', { lua: SETTLE_SCRIPT });
  client.defineCommand('genopsBudgetState', { lua: STATE_SCRIPT });
  client.defineCommand('genopsBudgetRenew', { lua: RENEW_SCRIPT });
  const preload = () => {
    for (const script of [RESERVE_SCRIPT, SETTLE_SCRIPT, STATE_SCRIPT, RENEW_SCRIPT]) void client.script('LOAD', script).catch(() => undefined);
  };
  client.on('ready', preload);
  if (client.status === 'ready') preload();
  const commands = client as unknown as { genopsBudgetReserve: ScriptCommand; genopsBudgetSettle: ScriptCommand; genopsBudgetState: ScriptCommand; genopsBudgetRenew: ScriptCommand };
  const reserveScript = commands.genopsBudgetReserve.bind(client);
  const settleScript = commands.genopsBudgetSettle.bind(client);
  const stateScript = commands.genopsBudgetState.bind(client);
  const renewScript = commands.genopsBudgetRenew.bind(client);

  const accountKeys = (account: BudgetAccount): string[] => {
    const key = accountStorageKey(account);
    return [`${tag}:acct:${key}`, `${tag}:exp:${key}`, `${tag}:slots:${key}`];
  };
  const slotArgs = (account: BudgetAccount, now: number): [number, number] =>
    account.period.kind === 'rolling' ? [slotIndexAt(account.period, now), account.period.slots] : [0, 0];
  const kindOf = (account: BudgetAccount) => (account.period.kind === 'calendar' ? 'c' : 'r');

  async function run(script: ScriptCommand, keys: string[], args: (string | number)[]): Promise<number[]> {
    try {
      return await script(keys.length, ...keys, ...args);
    } catch (error) {
      throw new GenopsError('backend_unavailable', `redis: ${(error as Error).message}`, { cause: error });
    }
  }

  const statesFrom = (reply: readonly number[], offset: number, accounts: readonly BudgetAccount[]): AccountState[] =>
    accounts.map((account, index) => ({ spent: Number(reply[offset + 2 * index]), reserved: Number(reply[offset + 2 * index + 1]), limit: account.limit }));

  return {
    async reserve(request) {
      const now = clock();
      assertReserveRequest(request, now);
      const { reservationId, entries, expiresAtMs } = request;
      const keys = [`${tag}:rsv:${reservationId}`];
      const args: (string | number)[] = [now, reservationId, expiresAtMs, ACCOUNT_GRACE_MS];
      for (const { account, amount } of entries) {
        keys.push(...accountKeys(account));
        args.push(kindOf(account), account.limit, amount, ...slotArgs(account, now), spendRelevantUntilMs(account, now));
      }
      const reply = await run(reserveScript, keys, args);
      if (Number(reply[0]) === -1) throw new RangeError(`reservation id ${reservationId} was used before: reservation ids are single-use`);
      const states = statesFrom(reply, 2, entries.map((entry) => entry.account));
      return Number(reply[0]) === 1 ? { ok: true, states } : { ok: false, failedIndex: Number(reply[1]) - 1, states };
    },

    async settle(request) {
      const now = clock();
      assertSettleRequest(request);
      const { reservationId, entries } = request;
      const keys = [`${tag}:rsv:${reservationId}`];
      const args: (string | number)[] = [now, reservationId, settledRetentionMaxMs, ACCOUNT_GRACE_MS];
      for (const { account, actual } of entries) {
        keys.push(...accountKeys(account));
        args.push(kindOf(account), actual, ...slotArgs(account, now), spendRelevantUntilMs(account, now));
      }
      const reply = await run(settleScript, keys, args);
      return { applied: Number(reply[0]) === 1, expired: Number(reply[1]) === 1, states: statesFrom(reply, 2, entries.map((entry) => entry.account)) };
    },

    async renew(request) {
      const now = clock();
      assertRenewRequest(request, now);
      const { reservationId, accounts, expiresAtMs } = request;
      const keys = [`${tag}:rsv:${reservationId}`];
      for (const account of accounts) keys.push(...accountKeys(account));
      const reply = await run(renewScript, keys, [now, reservationId, expiresAtMs, ACCOUNT_GRACE_MS]);
      return { renewed: Number(reply) === 1 };
    },

    async state(accounts) {
      assertAccounts(accounts);
      if (accounts.length === 0) return [];
      const now = clock();
      const keys: string[] = [];
      const args: (string | number)[] = [now];
      for (const account of accounts) {
        keys.push(...accountKeys(account));
        args.push(kindOf(account), ...slotArgs(account, now));
      }
      return statesFrom(await run(stateScript, keys, args), 0, accounts);
    },

    async close() {
      client.disconnect();
    },
  };
}
