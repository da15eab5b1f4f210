import type { Fixtures } from './fixtures.js';
import type { ScenarioResult, Section } from './report.js';

/** One measured step; `run` returns the raw result of one round. */
export interface Step {
  readonly id: string;
  readonly section: Section;
  readonly title: string;
  readonly expectedS: number;
  /** Starts the fixtures the step needs. */
  prepare(fixtures: Fixtures): Promise<unknown>;
  run(context: StepContext): Promise<ScenarioResult>;
}

export interface StepContext {
  readonly fixtures: Fixtures;
  readonly onProgress: (done: number, failed: number) => void;
  readonly setDetail: (detail: string) => void;
}
