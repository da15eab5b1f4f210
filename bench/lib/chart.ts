import { SECTIONS, type ScenarioResult, type Section } from './report.js';

const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#7f7f7f', '#bcbd22', '#393b79', '#637939'];
const WIDTH = 1240;
const PANEL_HEIGHT = 360;
const MARGIN = { left: 70, right: 520, top: 40, bottom: 50 };
const PERCENTILE_TICKS = [0, 50, 90, 99, 99.9, 99.99];

/** Position of a percentile on a "nines" axis: 50 → 0.3, 90 → 1, 99 → 2, 99.9 → 3. */
function nines(percentile: number): number {
  return -Math.log10(1 - Math.min(percentile, 99.99) / 100);
}

function escape(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/**
 * Latency percentile curves (HdrHistogram style: percentile on a log
 * "nines" axis, latency on a log axis) of the open-loop scenarios, one
 * panel per section, as a standalone SVG.
 */
export function renderLatencyChart(results: readonly ScenarioResult[], title: string): string {
  const panels = (['direct-open', 'envoy-open'] as Section[])
    .map((section) => ({ section, rows: results.filter((result) => result.section === section && result.load.curve.length > 0) }))
    .filter((panel) => panel.rows.length > 0);
  const height = 50 + panels.length * (PANEL_HEIGHT + 20);
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="Helvetica, Arial, sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${WIDTH / 2}" y="24" text-anchor="middle" font-size="16" font-weight="bold">${escape(title)}</text>`,
  ];
  panels.forEach((panel, index) => {
    const top = 40 + index * (PANEL_HEIGHT + 20);
    parts.push(renderPanel(panel.rows, SECTIONS[panel.section], top));
  });
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}

function renderPanel(rows: readonly ScenarioResult[], heading: string, top: number): string {
  const plot = { x: MARGIN.left, y: top + MARGIN.top, w: WIDTH - MARGIN.left - MARGIN.right, h: PANEL_HEIGHT - MARGIN.top - MARGIN.bottom };
  const values = rows.flatMap((row) => row.load.curve.filter(([p]) => p < 100).map(([, us]) => Math.max(us, 1)));
  const minLog = Math.floor(Math.log10(Math.min(...values) / 1000));
  const maxLog = Math.ceil(Math.log10(Math.max(...values) / 1000));
  const span = Math.max(1, maxLog - minLog);
  const xOf = (percentile: number) => plot.x + (nines(percentile) / 4) * plot.w;
  const yOf = (us: number) => plot.y + plot.h - ((Math.log10(Math.max(us, 1) / 1000) - minLog) / span) * plot.h;
  const out: string[] = [];
  out.push(`<text x="${plot.x}" y="${top + 22}" font-size="13" font-weight="bold">${escape(heading.split(':')[0]!)}</text>`);
  out.push(`<rect x="${plot.x}" y="${plot.y}" width="${plot.w}" height="${plot.h}" fill="none" stroke="#999"/>`);
  for (let exponent = minLog; exponent <= maxLog; exponent++) {
    const ms = 10 ** exponent;
    const y = yOf(ms * 1000);
    out.push(`<line x1="${plot.x}" y1="${y}" x2="${plot.x + plot.w}" y2="${y}" stroke="#ddd"/>`);
    out.push(`<text x="${plot.x - 6}" y="${y + 4}" text-anchor="end">${ms >= 1 ? ms.toFixed(0) : ms.toString()} ms</text>`);
  }
  for (const percentile of PERCENTILE_TICKS) {
    const x = xOf(percentile);
    out.push(`<line x1="${x}" y1="${plot.y}" x2="${x}" y2="${plot.y + plot.h}" stroke="#eee"/>`);
    out.push(`<text x="${x}" y="${plot.y + plot.h + 16}" text-anchor="middle">p${percentile}</text>`);
  }
  out.push(`<text x="${plot.x + plot.w / 2}" y="${plot.y + plot.h + 36}" text-anchor="middle">percentile</text>`);
  rows.forEach((row, index) => {
    const color = PALETTE[index % PALETTE.length]!;
    const points = row.load.curve.filter(([p]) => p < 100).map(([p, us]) => `${xOf(p).toFixed(1)},${yOf(us).toFixed(1)}`);
    out.push(`<polyline fill="none" stroke="${color}" stroke-width="2" points="${points.join(' ')}"/>`);
    const legendY = plot.y + 8 + index * 18;
    const label = `${row.title} @ ${Math.round(row.load.targetRps ?? 0)}/s (p99 ${(row.load.latencyUs.p99 / 1000).toFixed(2)} ms)`;
    out.push(`<line x1="${plot.x + plot.w + 14}" y1="${legendY}" x2="${plot.x + plot.w + 34}" y2="${legendY}" stroke="${color}" stroke-width="3"/>`);
    out.push(`<text x="${plot.x + plot.w + 40}" y="${legendY + 4}" font-size="11">${escape(label)}</text>`);
  });
  return out.join('\n');
}
