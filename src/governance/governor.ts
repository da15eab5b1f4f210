import type { DecisionEngine, DecisionInput } from './decision-engine.js';
import type { Decision } from './decision.js';
import type { RateLimiter } from './rate-limiting.js';

/** The whole decision for one request: policy first, then rate limits. */
export interface Governor {
  /** Synchronous when every step is (the memory backend); a Promise when a step waits on Redis. */
  evaluate(input: DecisionInput): Decision | Promise<Decision>;
}

export function createGovernor(options: { engine: DecisionEngine; rateLimiter?: RateLimiter | undefined }): Governor {
  const { engine, rateLimiter } = options;
  return {
    evaluate(input) {
      const decision = engine.decide(input);
      return rateLimiter ? rateLimiter.apply(decision, { path: input.path }) : decision;
    },
  };
}
