/**
 * The progress display: on a terminal one status line redrawn in place
 * (step, scenario, a bar over its expected time, live counters); elsewhere
 * (CI, a pipe) one line when a step starts and one when it ends.
 */
export interface Progress {
  /** A new step: `expectedS` is how long it should take (for the bar). */
  step(index: number, total: number, title: string, expectedS: number): void;
  /** Live detail of the running step, e.g. "12,345 req · svc cpu 97%". */
  update(detail: string): void;
  /** The step finished: prints its one-line summary. */
  done(summary: string): void;
  /** A message between steps (fixtures starting, warnings). */
  note(message: string): void;
}

export function createProgress(stream: NodeJS.WriteStream = process.stderr): Progress {
  const tty = stream.isTTY === true;
  let title = '';
  let prefix = '';
  let startedAt = 0;
  let expected = 1;
  let detail = '';
  let timer: NodeJS.Timeout | undefined;

  const clear = () => {
    if (tty) stream.write('\r\x1b[2K');
  };
  const draw = () => {
    if (!tty) return;
    const elapsed = (performance.now() - startedAt) / 1000;
    const width = 24;
    const filled = Math.min(width, Math.round((elapsed / expected) * width));
    const bar = `${'█'.repeat(filled)}${'░'.repeat(width - filled)}`;
    const line = `${prefix} ${title}  ${bar} ${elapsed.toFixed(0)}/${expected.toFixed(0)}s  ${detail}`;
    const columns = stream.columns ?? 120;
    clear();
    stream.write(line.length > columns - 1 ? `${line.slice(0, columns - 2)}…` : line);
  };

  return {
    step(index, total, stepTitle, expectedS) {
      title = stepTitle;
      prefix = `[${String(index).padStart(String(total).length)}/${total}]`;
      startedAt = performance.now();
      expected = Math.max(1, expectedS);
      detail = '';
      if (tty) {
        clearInterval(timer);
        timer = setInterval(draw, 250);
        timer.unref();
        draw();
      } else {
        stream.write(`${prefix} ${title} (~${Math.round(expectedS)}s)\n`);
      }
    },
    update(text) {
      detail = text;
    },
    done(summary) {
      clearInterval(timer);
      timer = undefined;
      clear();
      stream.write(`${prefix} ${title}: ${summary}\n`);
    },
    note(message) {
      clear();
      stream.write(`bench: ${message}\n`);
      if (timer) draw();
    },
  };
}
