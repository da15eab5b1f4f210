/** Model pattern semantics (team/tier model lists, selectors, pricing). */
export interface ModelMatcher {
  readonly matchesAll: boolean;
  matches(model: string): boolean;
}

export function createModelMatcher(patterns: readonly string[]): ModelMatcher {
  void patterns;
  throw new Error('createModelMatcher: not implemented yet');
}

/** Specificity for "most specific wins": exact-length family > shorter family > glob by literal length > '*'. Returns undefined when the pattern does not match. */
export function modelPatternSpecificity(pattern: string, model: string): number | undefined {
  void pattern;
  void model;
  throw new Error('modelPatternSpecificity: not implemented yet');
}
