import { isGenopsError } from '../errors/genops-error.js';
import { boundedAccountId } from '../limits/budget-account.js';
import type { AccountState, BudgetAccount, BudgetLedger } from '../limits/budget-ledger.js';
import { periodWindow } from '../policy/budget-periods.js';
import type { CompiledBudget, CompiledPolicy } from '../policy/compiled-policy.js';
import { createModelMatcher } from '../usage/model-pattern.js';
import { canChangeModel, outputCapField } from '../usage/request-body.js';
import { requestBound } from './budget-bound.js';
import { isAllowed, type Decision } from './decision.js';
import { selects } from './selector.js';
import { isFree, type UsageRecord } from './usage-accounting.js';
import type { BudgetOutcome, BudgetStatus, ReservedBudget } from './budget-outcome.js';

export type BudgetEventKind = 'reserved' | 'warned' | 'downgraded' | 'blocked' | 'unavailable' | 'overshoot' | 'settled' | 'released';

export interface BudgetObserver {
  event(budget: string, kind: BudgetEventKind): void;
  /** Current state of one account, after a reservation or a settlement. */
  account(budget: string, account: BudgetAccount, state: AccountState): void;
  backendFailed(error: Error): void;
  /** Any other exception on a budget path (counted and logged); the budgets follow their failure mode. */
  internalError?(error: Error): void;
  overshoot(budget: string, reservedNano: number, actualNano: number, decisionId: string): void;
}

export interface Budgeter {
  /**
   * After policy and rate limits: reserves the worst case of an allowed AI request on every
   * budget that selects it (all or none), downgrades or refuses it. `recheck` decides the
   * request again with another model (a downgrade is checked like any model).
   */
  apply(decision: Decision, request: BudgetRequest): Decision | Promise<Decision>;
  /** Turns the reservation into the actual cost, exactly once. Never rejects. */
  settle(decision: Decision, record: UsageRecord): Promise<void>;
  /** Renews the decision's hold from this process until it is settled here (this replica meters an exchange another one decided). */
  keepHold(decision: Decision): void;
  /** Stops renewing the decision's hold here (settled or metered by another replica). */
  forgetHold(decision: Decision): void;
}

export interface BudgetRequest {
  /** Bytes of the request body: an upper bound of its prompt tokens (every token covers at least one byte). */
  readonly bodyBytes: number;
  readonly path: string | undefined;
  readonly recheck: (model: string) => Decision;
}

/** A reservation nobody renews (its replica crashed) is released after this; a live one is renewed every third of it. */
export const RESERVATION_TTL_MS = 15 * 60_000;
/** What the service may add to a body it rewrites: `,"max_completion_tokens":N,"max_tokens":N`, `"stream_options":{…,"include_usage":true}` (the model id's length is added on a downgrade). */
export const REWRITE_ALLOWANCE_BYTES = 128;
/** Renewal stops after this: a hold whose settlement never came (a leak) expires at last. */
export const MAX_HOLD_MS = 24 * 3_600_000;

interface Selected {
  readonly budget: CompiledBudget;
  readonly account: BudgetAccount;
  readonly resetMs: number;
}

export interface BudgeterOptions {
  readonly ledger: BudgetLedger;
  readonly policy: () => CompiledPolicy;
  readonly clock: () => number;
  readonly observer: BudgetObserver;
  /** How long a hold lives without renewal; default RESERVATION_TTL_MS. */
  readonly holdTtlMs?: number | undefined;
}

export function createBudgeter(options: BudgeterOptions): Budgeter {
  const { ledger, policy, clock, observer } = options;
  const holdTtlMs = options.holdTtlMs ?? RESERVATION_TTL_MS;
  const holds = createHoldKeeper({ ledger, clock, holdTtlMs, failed: (error) => failed(error) });

  async function apply(decision: Decision, request: BudgetRequest): Promise<Decision> {
    const current = policy();
    let selected: Selected[] | undefined;
    try {
      const nowMs = clock();
      selected = select(current.budgets, decision, request.path, nowMs);
      if (selected.length === 0) return decision;
      return await reserve(decision, request, current, selected, nowMs);
    } catch (error) {
      // Whatever failed (the ledger, or a bug), each budget follows its failure mode: never an error to Envoy.
      return unavailable(decision, selected ?? [], error, current);
    }
  }

  async function reserve(decision: Decision, request: BudgetRequest, current: CompiledPolicy, selected: readonly Selected[], nowMs: number): Promise<Decision> {
    const ai = decision.ai!;
    if (ai.deferred) {
      // Billed later, outside this exchange (a batch, a background response): nothing can be reserved for it.
      const enforcedBudget = selected.find(({ budget }) => budget.mode === 'enforce');
      if (!enforcedBudget || (ai.deferred === 'batch' && current.usage.batches === 'allow')) return decision;
      observer.event(enforcedBudget.budget.name, 'blocked');
      const what = ai.deferred === 'batch' ? `a batch (${ai.api})` : 'a background response (background: true)';
      const allow = ai.deferred === 'batch' ? '; spec.usage.batches: allow admits batches unreserved' : '';
      return refuse(decision, 'x_unreservable_request', 403, `budget ${enforcedBudget.budget.name} cannot reserve for ${what}: the provider bills it later, outside this request${allow}`, undefined);
    }
    let states: readonly AccountState[];
    try {
      states = await ledger.state(selected.map(({ account }) => account));
    } catch (error) {
      return unavailable(decision, selected, error);
    }

    // Downgrade: the first budget past its threshold sends the request to its cheaper model.
    let decided = decision;
    let downgradedTo: string | undefined;
    let downgradedBy: string | undefined;
    const model = decision.context.model ?? ai.model.toLowerCase();
    for (const [index, { budget }] of selected.entries()) {
      const state = states[index]!;
      // A model named by the path (Gemini, Bedrock, an Azure deployment) cannot be swapped in the body.
      if (!budget.downgrade || budget.mode !== 'enforce' || !canChangeModel(ai)) continue;
      if (percent(state.spent + state.reserved, state.limit) < budget.downgrade.at) continue;
      if (budget.downgrade.model === model) break;
      const again = request.recheck(budget.downgrade.model);
      if (!isAllowed(again)) {
        observer.event(budget.name, 'blocked');
        return { ...again, message: `budget ${budget.name} is ${Math.floor(percent(state.spent + state.reserved, state.limit))}% spent and downgrades to ${budget.downgrade.model}: ${again.message}` };
      }
      // The request still asked for its own model (usage records say so); it is served the cheaper one.
      decided = { ...again, ai, route: routeFor(current, budget.downgrade.model) ?? again.route, rateLimit: decision.rateLimit, tokenLimits: decision.tokenLimits };
      downgradedTo = budget.downgrade.model;
      downgradedBy = budget.name;
      observer.event(budget.name, 'downgraded');
      break;
    }

    const servedModel = downgradedTo ?? model;
    const price = current.prices.priceOf(servedModel);
    if (!price) {
      const enforced = selected.find(({ budget }) => budget.mode === 'enforce');
      if (enforced) {
        observer.event(enforced.budget.name, 'blocked');
        return refuse(decided, 'BUDGET_RESERVATION_FAILED', 403, `model ${servedModel} has no price, so budget ${enforced.budget.name} cannot reserve for it`, undefined);
      }
      return { ...decided, budget: outcome(decided.id, selected, [], 0, undefined, undefined, downgradedTo, downgradedBy) };
    }

    // The output cap: the request's own, or what the tightest enforced budget can still pay for
    // (dry-run budgets never change traffic).
    const enforced = selected.filter(({ budget }) => budget.mode === 'enforce');
    const tracked = selected.filter(({ budget }) => budget.mode !== 'enforce');
    const choices = Math.max(1, ai.n);
    // The provider reads the forwarded body: when the service changes it (an output cap, include_usage, a cheaper
    // model) it grows by at most those fields.
    const rewritten = downgradedTo !== undefined || ai.needsIncludeUsage || (ai.outputCap === undefined && ai.api !== 'openai.embeddings' && enforced.length > 0);
    const bodyBytes = rewritten ? Math.max(request.bodyBytes, ai.bound?.reserializedBytes ?? 0) + REWRITE_ALLOWANCE_BYTES + (downgradedTo?.length ?? 0) : request.bodyBytes;
    const bound = requestBound({ ai, bodyBytes, model: servedModel, price, toolPrices: current.toolPrices });
    if (!bound.ok && enforced.length > 0) {
      observer.event(enforced[0]!.budget.name, 'blocked');
      return refuse(decided, 'x_unreservable_request', 403, `budget ${enforced[0]!.budget.name} cannot reserve for this request: ${bound.reason}`, undefined);
    }
    // Dry-run budgets only: what can be bounded (the body) is tracked.
    const fixedPico = bound.ok ? bound.fixedPico : BigInt(bodyBytes) * price.inputPico;
    const outputRate = bound.ok ? bound.outputPicoPerToken : price.outputPico * BigInt(choices);
    let outputCap = ai.outputCap;
    let injectedCap: number | undefined;
    if (outputCap === undefined && ai.signedBody && enforced.length > 0 && ai.api !== 'openai.embeddings' && ai.api !== 'azure.embeddings') {
      // The cap cannot be set in a signed body: without one the output, and so the cost, is unbounded.
      observer.event(enforced[0]!.budget.name, 'blocked');
      return refuse(decided, 'x_output_cap_required', 400, `budget ${enforced[0]!.budget.name} needs an output cap and the request body is signed (AWS SigV4), so the service cannot set one: send ${outputCapField(ai.api)}`, undefined);
    }
    if (outputCap === undefined && ai.api !== 'openai.embeddings' && ai.api !== 'azure.embeddings' && enforced.length > 0) {
      const remaining = Math.min(...enforced.map((entry) => remainingOf(states[selected.indexOf(entry)]!)));
      const affordable = outputRate > 0n ? (BigInt(Math.max(0, remaining)) * 1000n - fixedPico) / outputRate : BigInt(Number.MAX_SAFE_INTEGER);
      const maximum = Math.min(...enforced.map(({ budget }) => budget.maxOutputTokens), (bound.ok ? bound.maxOutput : undefined) ?? Number.MAX_SAFE_INTEGER);
      injectedCap = Math.max(0, Math.min(maximum, Number(affordable < 0n ? 0n : affordable)));
      outputCap = injectedCap;
    }
    const worstCase = ceilDiv(fixedPico + BigInt(outputCap ?? 0) * outputRate, 1000n);
    const toolsNano = bound.ok ? Number(ceilDiv(bound.toolsPico, 1000n)) : 0;
    // An enforced budget that cannot pay for the worst case refuses before anything is reserved
    // (also keeps absurd caps, beyond any budget, out of the ledger's integer range).
    const unaffordable = enforced.find((entry) => worstCase > BigInt(Math.max(0, remainingOf(states[selected.indexOf(entry)]!))));
    if (unaffordable || (injectedCap !== undefined && injectedCap < 1)) {
      const entry = unaffordable ?? enforced[0]!;
      observer.event(entry.budget.name, 'blocked');
      return exceeded(decided, entry, states[selected.indexOf(entry)]!, nowMs);
    }
    const worstCaseNano = Number(worstCase > BigInt(Number.MAX_SAFE_INTEGER) ? BigInt(Number.MAX_SAFE_INTEGER) : worstCase);

    // Dry-run budgets decide and count, never hold money or deny.
    let warning: Decision | undefined;
    for (const entry of tracked) {
      const state = states[selected.indexOf(entry)]!;
      if (state.spent + state.reserved + worstCaseNano > state.limit && !warning) {
        observer.event(entry.budget.name, 'blocked');
        warning = warn(decided, entry, state, worstCaseNano);
      }
    }
    if (enforced.length === 0) return { ...(warning ?? decided), budget: { ...outcome(decided.id, selected, [], worstCaseNano, statusOf(selected, states, worstCaseNano, false), injectedCap, downgradedTo, downgradedBy), toolsNano } };

    let reserved: Awaited<ReturnType<BudgetLedger['reserve']>>;
    try {
      reserved = await ledger.reserve({ reservationId: decided.id, entries: enforced.map(({ account }) => ({ account, amount: worstCaseNano })), expiresAtMs: nowMs + holdTtlMs });
    } catch (error) {
      return unavailable(decided, selected, error);
    }
    if (!reserved.ok) {
      const failed = enforced[reserved.failedIndex]!;
      observer.event(failed.budget.name, 'blocked');
      return exceeded(decided, failed, reserved.states[reserved.failedIndex]!, nowMs);
    }
    holds.keep(decided.id, enforced.map(({ account }) => account));
    const after = selected.map((entry, index) => {
      const enforcedIndex = enforced.indexOf(entry);
      return enforcedIndex === -1 ? states[index]! : reserved.states[enforcedIndex]!;
    });
    selected.forEach((entry, index) => observer.account(entry.budget.name, entry.account, after[index]!));
    let warned = false;
    for (const [index, entry] of selected.entries()) {
      observer.event(entry.budget.name, 'reserved');
      if (entry.budget.warnAt !== undefined && percent(after[index]!.spent + after[index]!.reserved, after[index]!.limit) >= entry.budget.warnAt) {
        warned = true;
        observer.event(entry.budget.name, 'warned');
      }
    }
    const status = statusOf(selected, after, 0, warned);
    return { ...(warning ?? decided), budget: { ...outcome(decided.id, selected, enforced, worstCaseNano, status, injectedCap, downgradedTo, downgradedBy), toolsNano } };
  }

  function failed(error: unknown): boolean {
    const failure = error instanceof Error ? error : new Error(String(error));
    const backend = isGenopsError(failure, 'backend_unavailable');
    if (backend || !observer.internalError) observer.backendFailed(failure);
    else observer.internalError(failure);
    return backend;
  }

  function unavailable(decision: Decision, selected: readonly Selected[], error: unknown, current?: CompiledPolicy): Decision {
    const backend = failed(error);
    for (const { budget } of selected) observer.event(budget.name, 'unavailable');
    // Failed before the budgets were known: the strictest budget of the policy decides.
    const candidates = selected.length > 0 ? selected.map(({ budget }) => budget) : (current?.budgets ?? []);
    const closed = candidates.find((budget) => budget.failureMode === 'closed' && budget.mode === 'enforce');
    if (closed) return refuse(decision, 'BUDGET_RESERVATION_FAILED', 503, `budget ${closed.name} cannot be checked (${backend ? 'ledger unavailable' : 'internal error'}) and fails closed`, undefined);
    // Fail open: admitted without a hold; the spend is still recorded when the ledger answers again.
    return { ...decision, budget: outcome(decision.id, selected, [], 0, undefined, undefined, undefined, undefined) };
  }

  return {
    apply(decision, request) {
      if (!isAllowed(decision) || !decision.ai || policy().budgets.length === 0) return decision;
      return apply(decision, request);
    },
    keepHold(decision) {
      const held = decision.budget?.entries.filter((entry) => entry.heldNano > 0) ?? [];
      if (held.length > 0) holds.keep(decision.budget!.reservationId, held.map((entry) => entry.account));
    },
    forgetHold(decision) {
      if (decision.budget) holds.release(decision.budget.reservationId);
    },
    async settle(decision, record) {
      if (decision.budget) holds.release(decision.budget.reservationId);
      try {
        await settleNow(decision, record);
      } catch (error) {
        failed(error);
      }
    },
  };

  async function settleNow(decision: Decision, record: UsageRecord): Promise<void> {
    const budget = decision.budget;
    if (!budget || budget.entries.length === 0) return;
    const toolsNano = toolChargeOf(decision, record, policy().toolPrices);
    const actualOf = (entry: ReservedBudget) => actualNanoOf(record, budget.worstCaseNano, entry.unknownUsage, toolsNano);
    const held = budget.entries.filter((entry) => entry.heldNano > 0);
    const untracked = budget.entries.filter((entry) => entry.heldNano === 0);
    // The reservation expires on its own if this fails; the actual cost is lost to this period only if the ledger stays down.
    if (held.length > 0) {
      const settled = await ledger.settle({ reservationId: budget.reservationId, entries: held.map((entry) => ({ account: entry.account, actual: actualOf(entry) })) });
      if (settled.applied) {
        held.forEach((entry, index) => {
          const actualNano = actualOf(entry);
          observer.account(entry.name, entry.account, settled.states[index]!);
          observer.event(entry.name, actualNano === 0 ? 'released' : 'settled');
          if (actualNano > entry.heldNano) observer.overshoot(entry.name, entry.heldNano, actualNano, decision.id);
        });
      }
    }
    const charged = untracked.filter((entry) => actualOf(entry) > 0);
    if (charged.length > 0) {
      // Never held (dry-run, or admitted while the ledger was down): the spend still counts.
      const settled = await ledger.settle({ reservationId: `${budget.reservationId}#untracked`, entries: charged.map((entry) => ({ account: entry.account, actual: actualOf(entry) })) });
      charged.forEach((entry, index) => observer.account(entry.name, entry.account, settled.states[index]!));
    }
  }
}

/**
 * What one budget is charged, nano-USD: nothing when the provider did not bill (its own error, or
 * never sent); the provider's usage priced; when the usage is unknown (estimated), the worst case
 * reserved under unknownUsage: hold (never less than the estimate); an unpriced model, the worst case.
 */
export function actualNanoOf(record: UsageRecord, worstCaseNano: number, unknownUsage: 'hold' | 'estimate', toolsNano = 0): number {
  if (isFree(record.outcome)) return 0;
  const priced = record.cost ? Number(ceilDiv(record.cost.pico, 1000n)) + toolsNano : undefined;
  if (record.estimated && unknownUsage === 'hold') return Math.max(priced ?? 0, worstCaseNano);
  return priced ?? worstCaseNano;
}

/**
 * Server-tool calls of a request that used them: the calls the response counted (Anthropic
 * usage.server_tool_use) at their price, else the request's maximum calls as reserved.
 */
function toolChargeOf(decision: Decision, record: UsageRecord, toolPrices: ReadonlyMap<string, bigint>): number {
  const reserved = decision.budget?.toolsNano ?? 0;
  const counted = record.tokens.serverToolCalls;
  if (reserved === 0 || counted === undefined) return reserved;
  let pico = 0n;
  for (const tool of decision.ai?.bound?.serverTools ?? []) pico += BigInt(counted[tool.name] ?? 0) * (toolPrices.get(tool.name) ?? 0n);
  return Number(ceilDiv(pico, 1000n));
}

/**
 * Keeps holds alive while their requests are open: every third of the hold's lifetime each live
 * hold is renewed for another lifetime, until it is settled (or MAX_HOLD_MS passes). A replica
 * that crashes stops renewing, and its holds expire one lifetime later.
 */
function createHoldKeeper(options: { ledger: BudgetLedger; clock: () => number; holdTtlMs: number; failed: (error: unknown) => void }) {
  const { ledger, clock, holdTtlMs, failed } = options;
  const live = new Map<string, { readonly accounts: readonly BudgetAccount[]; readonly since: number }>();
  let timer: NodeJS.Timeout | undefined;
  let renewing = false;

  async function renewAll(): Promise<void> {
    if (renewing) return;
    renewing = true;
    try {
      await renewEach();
    } finally {
      renewing = false;
    }
  }

  async function renewEach(): Promise<void> {
    const now = clock();
    for (const [reservationId, hold] of live) {
      if (now - hold.since > MAX_HOLD_MS) {
        live.delete(reservationId);
        continue;
      }
      try {
        const { renewed } = await ledger.renew({ reservationId, accounts: hold.accounts, expiresAtMs: clock() + holdTtlMs });
        // Gone (settled meanwhile, or expired while the ledger was unreachable): nothing left to keep.
        if (!renewed) live.delete(reservationId);
      } catch (error) {
        failed(error);
      }
    }
    if (live.size === 0) stop();
  }

  function stop(): void {
    if (timer) clearInterval(timer);
    timer = undefined;
  }

  return {
    keep(reservationId: string, accounts: readonly BudgetAccount[]): void {
      live.set(reservationId, { accounts, since: clock() });
      if (!timer) {
        timer = setInterval(() => void renewAll(), Math.max(1, Math.floor(holdTtlMs / 3)));
        timer.unref();
      }
    },
    // The timer is stopped by the next tick that finds nothing to keep, not here: with an exchange or
    // two in flight the set empties after almost every one, and a setInterval/clearInterval pair per
    // exchange is a Timeout (and often a timer list) allocated and torn down each time.
    release(reservationId: string): void {
      live.delete(reservationId);
    },
  };
}

function outcome(reservationId: string, selected: readonly Selected[], held: readonly Selected[], worstCaseNano: number, status: BudgetStatus | undefined, outputCap: number | undefined, downgradedTo: string | undefined, downgradedBy: string | undefined): BudgetOutcome {
  return {
    reservationId,
    entries: selected.map((entry) => ({ name: entry.budget.name, account: entry.account, heldNano: held.includes(entry) ? worstCaseNano : 0, unknownUsage: entry.budget.unknownUsage })),
    worstCaseNano,
    status,
    outputCap,
    downgradedTo,
    downgradedBy,
  };
}

function select(budgets: readonly CompiledBudget[], decision: Decision, path: string | undefined, nowMs: number): Selected[] {
  const selected: Selected[] = [];
  for (const budget of budgets) {
    if (budget.selector && !selects(budget.selector, decision, path)) continue;
    const values: string[] = [];
    for (const dimension of budget.key) {
      const value = dimension === 'principal' ? decision.principal : decision.context[dimension];
      if (value === undefined) break;
      values.push(value);
    }
    // A request without one of the key's fields is not governed by that budget (list it in context.required).
    if (values.length !== budget.key.length) continue;
    const window = periodWindow(budget.period, nowMs);
    const period = budget.period.kind === 'calendar'
      ? { kind: 'calendar' as const, startMs: window.startMs, endMs: window.endMs }
      : { kind: 'rolling' as const, windowMs: budget.period.windowMs, slots: budget.period.slots };
    selected.push({ budget, account: { id: boundedAccountId(`${budget.name}|${values.join('|')}`), limit: budget.limitNano, period }, resetMs: window.endMs });
  }
  return selected;
}


/** The route a downgraded model goes to: the policy route whose name is the model's family (claude-haiku for claude-haiku-4-5). */
function routeFor(policy: CompiledPolicy, model: string): string | undefined {
  const routes = new Set<string>([...policy.routes.byTier.values(), ...(policy.routes.default ? [policy.routes.default] : [])]);
  for (const team of policy.teams.values()) for (const route of team.routes.byTier.values()) routes.add(route);
  let best: string | undefined;
  for (const route of routes) if (createModelMatcher([route]).matches(model) && (!best || route.length > best.length)) best = route;
  return best;
}

function remainingOf(state: AccountState): number {
  return state.limit - state.spent - state.reserved;
}

function percent(consumed: number, limit: number): number {
  return limit <= 0 ? 100 : (consumed / limit) * 100;
}

function ceilDiv(value: bigint, divisor: bigint): bigint {
  return (value + divisor - 1n) / divisor;
}

function tightestIndex(selected: readonly Selected[], states: readonly AccountState[]): number {
  let best = 0;
  selected.forEach((_, index) => {
    const remaining = states[index]!.limit - states[index]!.spent - states[index]!.reserved;
    const bestRemaining = states[best]!.limit - states[best]!.spent - states[best]!.reserved;
    if (remaining < bestRemaining) best = index;
  });
  return best;
}

function statusOf(selected: readonly Selected[], states: readonly AccountState[], extraNano: number, warned: boolean): BudgetStatus | undefined {
  if (selected.length === 0) return undefined;
  const index = tightestIndex(selected, states);
  const entry = selected[index]!;
  const state = states[index]!;
  const consumedNano = state.spent + state.reserved + extraNano;
  return { name: entry.budget.name, periodText: entry.budget.periodText, limitNano: state.limit, consumedNano, remainingNano: Math.max(0, state.limit - consumedNano), resetMs: entry.resetMs, warned };
}

function exceeded(decision: Decision, entry: Selected, state: AccountState, nowMs: number): Decision {
  const consumedNano = state.spent + state.reserved;
  const retryAfterSeconds = Math.max(1, Math.ceil((entry.resetMs - nowMs) / 1000));
  const status: BudgetStatus = { name: entry.budget.name, periodText: entry.budget.periodText, limitNano: state.limit, consumedNano, remainingNano: Math.max(0, state.limit - consumedNano), resetMs: entry.resetMs, warned: false, retryAfterSeconds };
  return refuse(decision, 'BUDGET_EXCEEDED', 429, `budget ${entry.budget.name} (${formatUsd(state.limit)} USD ${entry.budget.periodText}) cannot pay for this request: ${formatUsd(consumedNano)} USD spent or reserved`, status);
}

function warn(decision: Decision, entry: Selected, state: AccountState, worstCaseNano: number): Decision {
  const consumedNano = state.spent + state.reserved;
  return {
    ...decision,
    result: decision.result === 'ALLOWED' ? 'WARNING' : decision.result,
    reasonCode: decision.reasonCode ?? 'BUDGET_EXCEEDED',
    message: decision.reasonCode ? decision.message : `dry-run: budget ${entry.budget.name} (${formatUsd(state.limit)} USD ${entry.budget.periodText}) cannot pay for this request (${formatUsd(consumedNano + worstCaseNano)} USD with it)`,
    httpStatus: decision.reasonCode ? decision.httpStatus : 429,
    dryRun: true,
  };
}

function refuse(decision: Decision, reasonCode: 'BUDGET_EXCEEDED' | 'BUDGET_RESERVATION_FAILED' | 'x_unreservable_request' | 'x_output_cap_required', httpStatus: number, message: string, status: BudgetStatus | undefined): Decision {
  return {
    ...decision,
    result: 'BLOCKED',
    reasonCode,
    message,
    httpStatus,
    dryRun: false,
    route: undefined,
    budget: status ? { reservationId: decision.id, entries: [], worstCaseNano: 0, status, outputCap: undefined, downgradedTo: undefined, downgradedBy: undefined } : undefined,
  };
}

/** nano-USD as a decimal USD string, trailing zeros trimmed. */
export function formatUsd(nano: number): string {
  const whole = Math.floor(nano / 1e9);
  const fraction = String(nano % 1e9).padStart(9, '0').replace(/0+$/, '');
  return fraction ? `${whole}.${fraction}` : String(whole);
}

