import type { DecisionEngine, DecisionInput } from './decision-engine.js';
import type { Decision } from './decision.js';
import type { Budgeter } from './budgeting.js';
import type { RateLimiter } from './rate-limiting.js';

export interface Governor {
  /** Synchronous when every step is (the memory backend); a Promise when a step waits on Redis. */
  evaluate(input: DecisionInput): Decision | Promise<Decision>;
}

/** The whole decision for one request: policy, then rate limits, then budgets. */
export function createGovernor(options: { engine: DecisionEngine; rateLimiter?: RateLimiter | undefined; budgeter?: Budgeter | undefined }): Governor {
  const { engine, rateLimiter, budgeter } = options;
  const budget = (decision: Decision, input: DecisionInput): Decision | Promise<Decision> => {
    // A token count (ai.free) costs nothing: there is nothing to reserve.
    if (!budgeter || !input.settles || !decision.ai || decision.ai.free) return decision;
    const ai = decision.ai;
    return budgeter.apply(decision, {
      bodyBytes: input.bodyBytes ?? 0,
      path: input.path,
      recheck: (model) => engine.decide({ ...input, decisionId: decision.id, headers: withoutModelHeader(input.headers), ai: { request: { ...ai, model } } }),
    });
  };
  return {
    evaluate(input) {
      const decision = engine.decide(input);
      const limited = rateLimiter ? rateLimiter.apply(decision, { path: input.path }) : decision;
      if (!budgeter) return limited;
      return limited instanceof Promise ? limited.then((settled) => budget(settled, input)) : budget(limited, input);
    },
  };
}

/** A downgraded request is checked as if it had asked for the cheaper model: its x-genops-model header no longer applies. */
function withoutModelHeader(headers: DecisionInput['headers']): DecisionInput['headers'] {
  return (name) => (name === 'x-genops-model' ? undefined : headers(name));
}
