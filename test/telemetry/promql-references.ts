/**
 * Reads the metric names and labels a PromQL expression refers to: enough of
 * a PromQL lexer and parser to tell functions, aggregations, keywords,
 * selectors, label matchers and grouping labels apart. Validity of the whole
 * expression is Prometheus's job (the dashboards test has a real one parse
 * each query); this answers "which series and labels does it read".
 */

export interface Selector {
  /** The metric name, or undefined for a name-less selector such as {job="x"}. */
  readonly metric: string | undefined;
  /** Labels used in its matchers. */
  readonly labels: string[];
}

export interface References {
  readonly selectors: Selector[];
  /** Labels in by/without/on/ignoring/group_left/group_right clauses. */
  readonly groupingLabels: string[];
  readonly functions: string[];
}

const FUNCTIONS = new Set([
  // Aggregation operators.
  'sum', 'min', 'max', 'avg', 'group', 'stddev', 'stdvar', 'count', 'count_values', 'bottomk', 'topk', 'quantile', 'limitk', 'limit_ratio',
  // Functions.
  'abs', 'absent', 'absent_over_time', 'ceil', 'changes', 'clamp', 'clamp_max', 'clamp_min', 'day_of_month', 'day_of_week', 'day_of_year',
  'days_in_month', 'delta', 'deriv', 'exp', 'floor', 'histogram_avg', 'histogram_count', 'histogram_fraction', 'histogram_quantile',
  'histogram_stddev', 'histogram_stdvar', 'histogram_sum', 'holt_winters', 'hour', 'idelta', 'increase', 'irate', 'label_join', 'label_replace',
  'ln', 'log2', 'log10', 'minute', 'month', 'predict_linear', 'rate', 'resets', 'round', 'scalar', 'sgn', 'sort', 'sort_desc', 'sqrt', 'time',
  'timestamp', 'vector', 'year', 'avg_over_time', 'min_over_time', 'max_over_time', 'sum_over_time', 'count_over_time', 'quantile_over_time',
  'stddev_over_time', 'stdvar_over_time', 'last_over_time', 'present_over_time', 'acos', 'acosh', 'asin', 'asinh', 'atan', 'atanh', 'cos',
  'cosh', 'sin', 'sinh', 'tan', 'tanh', 'deg', 'rad', 'pi',
]);
const GROUPING = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right']);
const KEYWORDS = new Set(['and', 'or', 'unless', 'bool', 'offset', 'atan2', 'inf', 'nan']);

type Token = { kind: 'ident' | 'string' | 'number' | 'duration' | 'punct'; text: string };

function tokenize(expression: string): Token[] {
  const tokens: Token[] = [];
  let index = 0;
  while (index < expression.length) {
    const rest = expression.slice(index);
    const space = /^(\s+|#[^\n]*)/.exec(rest);
    if (space) {
      index += space[0].length;
      continue;
    }
    const string = /^("(\\.|[^"\\])*"|'(\\.|[^'\\])*'|`[^`]*`)/.exec(rest);
    if (string) {
      tokens.push({ kind: 'string', text: string[0].slice(1, -1) });
      index += string[0].length;
      continue;
    }
    const duration = /^\d+(ms|[smhdwy])(\d+(ms|[smhdwy]))*/.exec(rest);
    if (duration) {
      tokens.push({ kind: 'duration', text: duration[0] });
      index += duration[0].length;
      continue;
    }
    const number = /^(0x[0-9a-fA-F]+|\d*\.?\d+([eE][-+]?\d+)?)/.exec(rest);
    if (number) {
      tokens.push({ kind: 'number', text: number[0] });
      index += number[0].length;
      continue;
    }
    const ident = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(rest);
    if (ident) {
      tokens.push({ kind: 'ident', text: ident[0] });
      index += ident[0].length;
      continue;
    }
    const punct = /^(=~|!~|!=|==|<=|>=|[-+*/%^<>=(){}[\],:@])/.exec(rest);
    if (punct) {
      tokens.push({ kind: 'punct', text: punct[0] });
      index += punct[0].length;
      continue;
    }
    throw new Error(`cannot read PromQL at "${rest.slice(0, 20)}" in: ${expression}`);
  }
  return tokens;
}

export function referencesOf(expression: string): References {
  const tokens = tokenize(expression);
  const selectors: Selector[] = [];
  const groupingLabels: string[] = [];
  const functions: string[] = [];
  let index = 0;
  const peek = (offset = 0) => tokens[index + offset];

  const readMatchers = (): string[] => {
    // At "{": name op "value" (, name op "value")* ,? "}"
    const labels: string[] = [];
    index++;
    while (peek() && peek()!.text !== '}') {
      const name = peek()!;
      const op = peek(1);
      const value = peek(2);
      if (name.kind !== 'ident' || !op || !['=', '!=', '=~', '!~'].includes(op.text) || value?.kind !== 'string') {
        throw new Error(`bad label matcher near "${name.text}" in: ${expression}`);
      }
      labels.push(name.text);
      index += 3;
      if (peek()?.text === ',') index++;
    }
    if (!peek()) throw new Error(`unclosed "{" in: ${expression}`);
    index++;
    return labels;
  };

  while (index < tokens.length) {
    const token = peek()!;
    if (token.kind === 'punct' && token.text === '{') {
      selectors.push({ metric: undefined, labels: readMatchers() });
      continue;
    }
    if (token.kind === 'punct' && token.text === '[') {
      // Range or subquery: durations, ":" and "]" only.
      while (peek() && peek()!.text !== ']') index++;
      index++;
      continue;
    }
    if (token.kind !== 'ident') {
      index++;
      continue;
    }
    const next = peek(1);
    if (GROUPING.has(token.text)) {
      index++;
      if (peek()?.text === '(') {
        index++;
        while (peek() && peek()!.text !== ')') {
          if (peek()!.kind === 'ident') groupingLabels.push(peek()!.text);
          index++;
        }
        index++;
      }
      continue;
    }
    if (KEYWORDS.has(token.text.toLowerCase())) {
      index++;
      continue;
    }
    if (next?.text === '(' || (FUNCTIONS.has(token.text) && next?.kind === 'ident' && GROUPING.has(next.text))) {
      if (!FUNCTIONS.has(token.text)) throw new Error(`unknown PromQL function or aggregation "${token.text}" in: ${expression}`);
      functions.push(token.text);
      index++;
      continue;
    }
    // A metric name, with or without matchers.
    index++;
    const labels = peek()?.text === '{' ? readMatchers() : [];
    selectors.push({ metric: token.text, labels });
  }
  return { selectors, groupingLabels, functions };
}

/** Labels a legend or annotation template refers to: {{label}} and {{ $labels.label }}. */
export function templateLabels(template: string): string[] {
  const labels: string[] = [];
  for (const match of template.matchAll(/\{\{\s*(?:\$labels\.)?([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}/g)) labels.push(match[1]!);
  return labels;
}
