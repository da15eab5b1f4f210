/** A set of patterns where "*" matches any run of characters. */
export interface GlobMatcher {
  readonly matchesAll: boolean;
  matches(value: string): boolean;
}

export function createGlobMatcher(patterns: readonly string[], normalize: (text: string) => string = (text) => text): GlobMatcher {
  const exact = new Set<string>();
  const wildcards: RegExp[] = [];
  let matchesAll = false;
  for (const raw of patterns) {
    const pattern = normalize(raw);
    if (pattern === '*') matchesAll = true;
    else if (pattern.includes('*')) wildcards.push(globToRegExp(pattern));
    else exact.add(pattern);
  }
  return {
    matchesAll,
    matches(value) {
      if (matchesAll) return true;
      const normalized = normalize(value);
      if (exact.has(normalized)) return true;
      for (const wildcard of wildcards) if (wildcard.test(normalized)) return true;
      return false;
    },
  };
}

function globToRegExp(pattern: string): RegExp {
  const body = pattern
    .split('*')
    .map((part) => part.replace(/[.+?^${}()|[\]\\/]/g, '\\$&'))
    .join('.*');
  return new RegExp(`^${body}$`);
}

/** Istio writes principals without the spiffe:// scheme; accept both forms. */
export function normalizePrincipal(principal: string): string {
  return principal.startsWith('spiffe://') ? principal.slice('spiffe://'.length) : principal;
}
