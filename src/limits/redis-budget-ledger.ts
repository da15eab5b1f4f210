import { randomUUID } from 'node:crypto';
import { GenopsError, isGenopsError } from '../errors/genops-error.js';
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
import { defineScript, preloadScripts, type RedisClient } from './redis-connection.js';
import { escapeHashTag, groupBySlot } from './redis-slots.js';

export interface RedisBudgetLedgerOptions {
  /** A connection from connectRedis (command timeout, no offline queue), so no call can hang: one node or a Cluster. */
  readonly client: RedisClient;
  /** Milliseconds since the epoch; the replica's clock, passed to the scripts. */
  readonly clock: () => number;
  /** Prefix of every key. Default "genops:budget". */
  readonly keyPrefix?: string;
  /** Longest a settled id is remembered past its reservation's expiry. Default 24 h. */
  readonly settledRetentionMaxMs?: number;
  /**
   * How long a settlement keeps retrying an account whose script failed (Redis down, a failover):
   * safe, since settling is idempotent per account and reservation id. Default 15 s; 0 = no retry.
   */
  readonly settleRetryMs?: number;
  /** Pause between those retries. Default 250 ms. */
  readonly settleRetryDelayMs?: number;
}

export interface RedisBudgetLedger extends BudgetLedger {
  reserve(request: ReserveRequest): Promise<ReserveResult>;
  settle(request: SettleRequest): Promise<SettleResult>;
  renew(request: RenewRequest): Promise<RenewResult>;
  state(accounts: readonly BudgetAccount[]): Promise<readonly AccountState[]>;
}

/*
 * Storage, per account, every key under the account's own hash tag (its storage key, which carries
 * the period: a calendar period's start, a rolling window's slot width), so each account lives in
 * one Redis Cluster slot and the fleet's accounts spread over all slots and shards:
 *   <prefix>:{<account>}:acct      HASH  spent (calendar) · reserved (sum of live holds) · h:<reservation id> → amount
 *   <prefix>:{<account>}:exp       ZSET  reservation id by expiry (ms): expired holds are purged from both
 *                                        whenever a script touches the account, before anything is read
 *   <prefix>:{<account>}:slots     HASH  rolling windows: slot index → settled spend; slots older than the
 *                                        window are deleted as they are read
 *   <prefix>:{<account>}:rsv:<id>  STRING  "s|<call>|<held>" once this reservation is settled on this account (kept for
 *                                        the retention); "x" once released after a refusal elsewhere (kept
 *                                        until the reservation's expiry, so a late copy of its reserve is refused)
 * Account keys expire a day (ACCOUNT_GRACE_MS) after the later of the period's end (rolling: the
 * window from the last write) and their last hold's expiry.
 *
 * A request's accounts may be in different slots, so no one script can see them all. The protocol
 * (see the README, "Budgets on Redis Cluster"):
 * - reserve: one script per account, in entry order; each checks spent + reserved + amount <= limit
 *   and holds on its own account atomically. The first refusal (or error) releases the holds already
 *   taken (and the failed one, which may have applied after a timeout) and answers "refused". Every
 *   hold is checked against its own account's limit, so spent + reserved <= limit holds on every
 *   account at every instant; a hold that is released a moment later can only make another request
 *   see less room (a transient refusal), never more. If the replica dies between two accounts, the
 *   holds it took expire at the reservation's expiry.
 * - settle: one script per account (in parallel), each exactly once per reservation id on that
 *   account (the "s" marker). A failed account is retried (settleRetryMs): a retry, or a duplicate
 *   settle from another replica, never counts twice.
 * - state: one script per slot.
 *
 * Time: the scripts use the calling replica's clock (ARGV), as the rate-limit scripts do, so tests
 * can inject time; TTLs are set relative to it (PX / PEXPIRE), so Redis's own clock does not matter.
 * Replicas whose clocks differ by d ms disagree by d about when a calendar period or a rolling slot
 * turns over, and a replica ahead by d releases another's hold d ms before its expiry: keep
 * reservation lifetimes (minutes) far above the skew (NTP keeps it to milliseconds).
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
 * One account. KEYS: acct, exp, slots, marker.
 * ARGV: now, reservation id, expiresAtMs, grace, kind (c|r), limit, amount, current slot, slot
 * count, relevant-until.
 * Returns {-1} for a reused id (held, settled or released here); else {ok (1|0), spent, reserved}:
 * after reserving when ok, as found otherwise.
 */
const RESERVE_SCRIPT = `${LUA_HELPERS}
local acct, exp, slots_key, marker = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local now = tonumber(ARGV[1])
local rid = ARGV[2]
local hold = 'h:' .. rid
if redis.call('EXISTS', marker) == 1 or redis.call('HEXISTS', acct, hold) == 1 then return {-1} end
local reserved = purge(acct, exp, now)
local spent = spent_of(acct, slots_key, ARGV[5], tonumber(ARGV[8]), tonumber(ARGV[9]))
local amount = tonumber(ARGV[7])
if spent + reserved + amount > tonumber(ARGV[6]) then return {0, spent, reserved} end
reserved = reserved + amount
redis.call('HSET', acct, hold, ARGV[7], 'reserved', fmt(reserved))
redis.call('ZADD', exp, ARGV[3], rid)
keep(acct, exp, slots_key, ARGV[5], now, tonumber(ARGV[10]), tonumber(ARGV[4]))
return {1, spent, reserved}
`;

/**
 * Undoes one account's hold of a reservation refused on another account, and marks the id released
 * here until the reservation's expiry: a reserve of it that arrives late (it timed out on the way)
 * is then refused instead of holding again. KEYS: acct, exp, marker. ARGV: now, reservation id, expiresAtMs.
 */
const RELEASE_SCRIPT = `${LUA_HELPERS}
local acct, exp, marker = KEYS[1], KEYS[2], KEYS[3]
local now = tonumber(ARGV[1])
local rid = ARGV[2]
local reserved = purge(acct, exp, now)
local amount = redis.call('HGET', acct, 'h:' .. rid)
if amount then
  redis.call('HDEL', acct, 'h:' .. rid)
  redis.call('ZREM', exp, rid)
  redis.call('HSET', acct, 'reserved', fmt(reserved - tonumber(amount)))
end
redis.call('SET', marker, 'x', 'PX', fmt(math.max(1000, tonumber(ARGV[3]) - now)), 'NX')
return 1
`;

/**
 * One account. KEYS: acct, exp, slots, marker.
 * ARGV: now, reservation id, retention cap, grace, kind (c|r), actual, current slot, slot count,
 * relevant-until, attempt token (one per settle call, the same on its retries).
 * Returns {applied (1|0), held (1|0), spent, reserved}; applied also when an earlier try of the
 * same call applied (a timeout whose script ran after all).
 */
const SETTLE_SCRIPT = `${LUA_HELPERS}
local acct, exp, slots_key, marker = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local now = tonumber(ARGV[1])
local rid = ARGV[2]
local kind = ARGV[5]
local hold = 'h:' .. rid
local mark = redis.call('GET', marker)
if mark and string.sub(mark, 1, 2) == 's|' then
  local reserved = purge(acct, exp, now)
  local spent = spent_of(acct, slots_key, kind, tonumber(ARGV[7]), tonumber(ARGV[8]))
  -- This very settlement applied it before (its reply was lost): report that, once more.
  if mark == 's|' .. ARGV[10] .. '|1' then return {1, 1, spent, reserved} end
  if mark == 's|' .. ARGV[10] .. '|0' then return {1, 0, spent, reserved} end
  return {0, 0, spent, reserved}
end
local base = now
local expiry = redis.call('ZSCORE', exp, rid)
if expiry and tonumber(expiry) > base then base = tonumber(expiry) end
local reserved = purge(acct, exp, now)
local held = 0
local amount = redis.call('HGET', acct, hold)
if amount then
  reserved = reserved - tonumber(amount)
  redis.call('HDEL', acct, hold)
  redis.call('ZREM', exp, rid)
  redis.call('HSET', acct, 'reserved', fmt(reserved))
  held = 1
end
if kind == 'c' then
  redis.call('HINCRBY', acct, 'spent', ARGV[6])
else
  redis.call('HINCRBY', slots_key, ARGV[7], ARGV[6])
end
local relevant_until = tonumber(ARGV[9])
keep(acct, exp, slots_key, kind, now, relevant_until, tonumber(ARGV[4]))
local wanted = base
if relevant_until > wanted then wanted = relevant_until end
local remember_until = math.min(wanted, base + tonumber(ARGV[3]))
redis.call('SET', marker, 's|' .. ARGV[10] .. '|' .. held, 'PX', fmt(math.max(1000, remember_until - now)))
return {1, held, spent_of(acct, slots_key, kind, tonumber(ARGV[7]), tonumber(ARGV[8])), reserved}
`;

/**
 * One account. KEYS: acct, exp, slots. ARGV: now, reservation id, expiresAtMs, grace.
 * Returns 1 when the account still holds the reservation (its hold now expires at expiresAtMs, or
 * later if it already did), 0 when it does not (settled, expired, released or never reserved).
 */
const RENEW_SCRIPT = `${LUA_HELPERS}
local now = tonumber(ARGV[1])
local rid = ARGV[2]
local expires = tonumber(ARGV[3])
local acct, exp, slots_key = KEYS[1], KEYS[2], KEYS[3]
purge(acct, exp, now)
if redis.call('HEXISTS', acct, 'h:' .. rid) == 0 then return 0 end
local current = tonumber(redis.call('ZSCORE', exp, rid) or '0')
if current >= expires then return 1 end
redis.call('ZADD', exp, ARGV[3], rid)
local want = expires + tonumber(ARGV[4]) - now
for _, key in ipairs({acct, exp, slots_key}) do
  local ttl = redis.call('PTTL', key)
  if ttl >= 0 and ttl < want then redis.call('PEXPIRE', key, fmt(want)) end
end
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

type ScriptCommand = (keys: readonly string[], args: readonly (string | number)[]) => Promise<unknown>;

interface AccountKeys {
  readonly acct: string;
  readonly exp: string;
  readonly slots: string;
  readonly marker: string;
}

/**
 * The budget ledger shared by every replica through Redis — one node or a
 * Redis Cluster — with each account in its own slot (the protocol above).
 * Scripts are EVALSHA of scripts loaded on connect, EVAL on NOSCRIPT. A Redis
 * error or timeout rejects with GenopsError('backend_unavailable') (after
 * releasing whatever a refused or failed reserve took); the caller applies
 * each budget's failure mode.
 */
export function createRedisBudgetLedger(options: RedisBudgetLedgerOptions): RedisBudgetLedger {
  const { client, clock } = options;
  const keyPrefix = options.keyPrefix ?? 'genops:budget';
  const settledRetentionMaxMs = options.settledRetentionMaxMs ?? DEFAULT_SETTLED_RETENTION_MAX_MS;
  const settleRetryMs = options.settleRetryMs ?? 15_000;
  const settleRetryDelayMs = options.settleRetryDelayMs ?? 250;
  const reserveScript = defineScript(client, 'genopsBudgetReserve', RESERVE_SCRIPT);
  const releaseScript = defineScript(client, 'genopsBudgetRelease', RELEASE_SCRIPT);
  const settleScript = defineScript(client, 'genopsBudgetSettle', SETTLE_SCRIPT);
  const stateScript = defineScript(client, 'genopsBudgetState', STATE_SCRIPT);
  const renewScript = defineScript(client, 'genopsBudgetRenew', RENEW_SCRIPT);
  preloadScripts(client, [RESERVE_SCRIPT, RELEASE_SCRIPT, SETTLE_SCRIPT, STATE_SCRIPT, RENEW_SCRIPT]);
  let closed = false;

  const accountKeys = (account: BudgetAccount, reservationId = ''): AccountKeys => {
    const base = `${keyPrefix}:{${escapeHashTag(accountStorageKey(account))}}`;
    return { acct: `${base}:acct`, exp: `${base}:exp`, slots: `${base}:slots`, marker: `${base}:rsv:${reservationId}` };
  };
  const slotArgs = (account: BudgetAccount, now: number): [number, number] =>
    account.period.kind === 'rolling' ? [slotIndexAt(account.period, now), account.period.slots] : [0, 0];
  const kindOf = (account: BudgetAccount) => (account.period.kind === 'calendar' ? 'c' : 'r');

  async function run(script: ScriptCommand, keys: string[], args: (string | number)[]): Promise<number[]> {
    try {
      return (await script(keys, args)) as number[];
    } catch (error) {
      throw new GenopsError('backend_unavailable', `redis: ${(error as Error).message}`, { cause: error });
    }
  }

  async function reserveOne(reservationId: string, account: BudgetAccount, amount: number, expiresAtMs: number, now: number): Promise<number[]> {
    const keys = accountKeys(account, reservationId);
    return run(
      reserveScript,
      [keys.acct, keys.exp, keys.slots, keys.marker],
      [now, reservationId, expiresAtMs, ACCOUNT_GRACE_MS, kindOf(account), account.limit, amount, ...slotArgs(account, now), spendRelevantUntilMs(account, now)],
    );
  }

  /** Best effort: a release that fails leaves the hold to expire at the reservation's expiry. */
  async function release(reservationId: string, accounts: readonly BudgetAccount[], expiresAtMs: number): Promise<void> {
    const now = clock();
    await Promise.allSettled(
      accounts.map((account) => {
        const keys = accountKeys(account, reservationId);
        return run(releaseScript, [keys.acct, keys.exp, keys.marker], [now, reservationId, expiresAtMs]);
      }),
    );
  }

  async function settleOne(reservationId: string, account: BudgetAccount, actual: number, token: string): Promise<number[]> {
    const deadline = clock() + settleRetryMs;
    for (;;) {
      const now = clock();
      const keys = accountKeys(account, reservationId);
      try {
        return await run(
          settleScript,
          [keys.acct, keys.exp, keys.slots, keys.marker],
          [now, reservationId, settledRetentionMaxMs, ACCOUNT_GRACE_MS, kindOf(account), actual, ...slotArgs(account, now), spendRelevantUntilMs(account, now), token],
        );
      } catch (error) {
        // Idempotent per account: a retry of a settle that did apply (its reply was lost) changes nothing.
        if (closed || !isGenopsError(error, 'backend_unavailable') || clock() + settleRetryDelayMs > deadline) throw error;
        await new Promise((resolve) => setTimeout(resolve, settleRetryDelayMs));
      }
    }
  }

  async function readStates(accounts: readonly BudgetAccount[], now: number): Promise<AccountState[]> {
    const states: AccountState[] = new Array(accounts.length);
    await Promise.all(
      groupBySlot(accounts, (account) => accountKeys(account).acct, client.isCluster).map(async (group) => {
        const keys: string[] = [];
        const args: (string | number)[] = [now];
        for (const account of group.items) {
          const { acct, exp, slots } = accountKeys(account);
          keys.push(acct, exp, slots);
          args.push(kindOf(account), ...slotArgs(account, now));
        }
        const reply = await run(stateScript, keys, args);
        group.indexes.forEach((index, position) => {
          states[index] = { spent: Number(reply[2 * position]), reserved: Number(reply[2 * position + 1]), limit: accounts[index]!.limit };
        });
      }),
    );
    return states;
  }

  return {
    async reserve(request) {
      const now = clock();
      assertReserveRequest(request, now);
      const { reservationId, entries, expiresAtMs } = request;
      const states: AccountState[] = [];
      for (const [index, { account, amount }] of entries.entries()) {
        const taken = entries.slice(0, index).map((entry) => entry.account);
        let reply: number[];
        try {
          reply = await reserveOne(reservationId, account, amount, expiresAtMs, now);
        } catch (error) {
          // It may have applied after all (a timeout): release it with the others.
          await release(reservationId, [...taken, account], expiresAtMs);
          throw error;
        }
        if (Number(reply[0]) === -1) {
          if (index > 0) await release(reservationId, taken, expiresAtMs);
          throw new RangeError(`reservation id ${reservationId} was used before: reservation ids are single-use`);
        }
        const [spent, reserved] = [Number(reply[1]), Number(reply[2])];
        if (Number(reply[0]) === 1) {
          states.push({ spent, reserved, limit: account.limit });
          continue;
        }
        await release(reservationId, taken, expiresAtMs);
        // States as found: the accounts held are reported without this request's hold, the rest read.
        const found = states.map((state, held) => ({ ...state, reserved: state.reserved - entries[held]!.amount }));
        found.push({ spent, reserved, limit: account.limit });
        const rest = entries.slice(index + 1).map((entry) => entry.account);
        if (rest.length > 0) {
          const read = await readStates(rest, now).catch(() => rest.map((rested) => ({ spent: 0, reserved: 0, limit: rested.limit })));
          found.push(...read);
        }
        return { ok: false, failedIndex: index, states: found };
      }
      return { ok: true, states };
    },

    async settle(request) {
      assertSettleRequest(request);
      const { reservationId, entries } = request;
      const token = randomUUID();
      const replies = await Promise.allSettled(entries.map(({ account, actual }) => settleOne(reservationId, account, actual, token)));
      const failed = replies.find((reply) => reply.status === 'rejected');
      // The accounts that did settle stay settled; settling again applies only the rest.
      if (failed) throw failed.reason;
      const settled = replies.map((reply) => (reply as PromiseFulfilledResult<number[]>).value);
      const applied = settled.some((reply) => Number(reply[0]) === 1);
      const held = settled.some((reply) => Number(reply[0]) === 1 && Number(reply[1]) === 1);
      return {
        applied,
        expired: applied && !held,
        states: settled.map((reply, index) => ({ spent: Number(reply[2]), reserved: Number(reply[3]), limit: entries[index]!.account.limit })),
      };
    },

    async renew(request) {
      const now = clock();
      assertRenewRequest(request, now);
      const { reservationId, accounts, expiresAtMs } = request;
      // One script per account (each in its own slot); held while any account still holds it.
      const replies = await Promise.all(
        accounts.map((account) => {
          const { acct, exp, slots } = accountKeys(account);
          return run(renewScript, [acct, exp, slots], [now, reservationId, expiresAtMs, ACCOUNT_GRACE_MS]);
        }),
      );
      return { renewed: replies.some((reply) => Number(reply) === 1) };
    },

    async state(accounts) {
      assertAccounts(accounts);
      if (accounts.length === 0) return [];
      return readStates(accounts, clock());
    },

    async close() {
      closed = true;
      client.disconnect();
    },
  };
}
