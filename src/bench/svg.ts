import { formatRatio } from './format.js';
import type { Verdict, WorkloadSummary } from './stats.js';

export interface RatioChartOptions {
  readonly title?: string;
  /** Total width in px. Default 900. */
  readonly width?: number;
}

const COLORS: Readonly<Record<Verdict, string>> = {
  win: '#2e7d32',
  lose: '#c62828',
  even: '#9e9e9e',
  'no-data': '#9e9e9e',
};
const REFERENCE_COLOR = '#1565c0';
const RANGE_COLOR = '#424242';
const UNITY_COLOR = '#000000';

const LABEL_WIDTH = 300;
const RIGHT_MARGIN = 60;
const TOP = 78;
const ROW_HEIGHT = 28;
const BAR_HEIGHT = 14;
const BOTTOM = 96;
/** A ratio of exactly 1.0 still gets a visible sliver. */
const MIN_BAR_WIDTH = 3;

export function escapeXml(text: string): string {
  return text
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&apos;');
}

function px(value: number): string {
  return Number(value.toFixed(1)).toString();
}

/** A tick step giving roughly five to ten ticks between 0 and `max`. */
function tickStep(max: number): number {
  for (const step of [0.1, 0.25, 0.5, 1, 2, 5, 10, 25, 50, 100]) {
    if (max / step <= 10) return step;
  }
  return 10 ** Math.ceil(Math.log10(max / 10));
}

/** Right end of the ratio axis: covers 1.0, every ratio, range and reference, rounded up to a tick. */
function axisMax(summaries: readonly WorkloadSummary[]): number {
  const ratios: number[] = [1.5];
  for (const summary of summaries) {
    for (const value of [summary.ratioMedian, summary.ratioMax, summary.reference?.ratioToOff]) {
      if (typeof value === 'number' && Number.isFinite(value)) ratios.push(value);
    }
  }
  const largest = Math.max(...ratios) * 1.05;
  const step = tickStep(largest);
  return Math.ceil(largest / step) * step;
}

function directionText(summary: WorkloadSummary): string {
  return summary.direction === 'higher-is-better' ? 'higher is better' : 'lower is better';
}

/**
 * Renders an SVG bar chart of the on/off ratio of each summarized workload
 * metric (one row, and one bar, per summary). Bars start at the 1.0 line and
 * end at the median on/off ratio; they are green for a win, red for a loss and
 * grey for even. A thin line with end caps shows the per-pair ratio min–max; a
 * blue tick marks AF_UNIX / bypass-off where a reference was measured. A
 * summary with no complete pair gets a "no valid pairs" note instead of a bar.
 */
export function renderRatioChartSvg(summaries: readonly WorkloadSummary[], options: RatioChartOptions = {}): string {
  const width = options.width ?? 900;
  const title = options.title ?? 'sockbypass: bypass on / off, median per-pair ratio';
  const plotLeft = LABEL_WIDTH;
  const plotRight = width - RIGHT_MARGIN;
  const plotBottom = TOP + summaries.length * ROW_HEIGHT;
  const height = plotBottom + BOTTOM;
  const maxRatio = axisMax(summaries);
  const x = (ratio: number): number => plotLeft + (Math.max(0, ratio) / maxRatio) * (plotRight - plotLeft);

  const parts: string[] = [];
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
  );
  parts.push(`<rect x="0" y="0" width="${width}" height="${height}" fill="#ffffff"/>`);
  parts.push(
    `<text class="title" x="${px(width / 2)}" y="24" text-anchor="middle" font-size="16" font-weight="bold">${escapeXml(title)}</text>`,
  );
  parts.push(
    `<text x="${px(width / 2)}" y="44" text-anchor="middle" fill="#555555">${escapeXml(
      'ratio = on / off of the raw metric: throughput and connection rate win above 1.0, latency and packets win below 1.0',
    )}</text>`,
  );

  // Grid and tick labels.
  const step = tickStep(maxRatio);
  const decimals = step < 1 ? 2 : 0;
  for (let tick = 0; tick <= maxRatio + step / 1000; tick += step) {
    const tickX = px(x(tick));
    parts.push(`<line class="grid" x1="${tickX}" y1="${TOP - 6}" x2="${tickX}" y2="${plotBottom}" stroke="#e0e0e0"/>`);
    parts.push(`<text x="${tickX}" y="${plotBottom + 16}" text-anchor="middle">${tick.toFixed(decimals)}</text>`);
  }

  // Rows.
  for (const [index, summary] of summaries.entries()) {
    const rowTop = TOP + index * ROW_HEIGHT;
    const centerY = rowTop + ROW_HEIGHT / 2;
    const label = `${summary.workload} - ${summary.metric}`;
    parts.push(
      `<text class="row-label" x="${plotLeft - 8}" y="${px(centerY + 4)}" text-anchor="end"><title>${escapeXml(`${label} (${directionText(summary)})`)}</title>${escapeXml(label)}</text>`,
    );
    const ratio = summary.ratioMedian;
    if (ratio === null) {
      parts.push(
        `<text class="no-data" x="${px(x(1) + 6)}" y="${px(centerY + 4)}" fill="#757575">no valid pairs</text>`,
      );
      continue;
    }
    const barStart = Math.min(x(1), x(ratio));
    const barWidth = Math.max(MIN_BAR_WIDTH, Math.abs(x(ratio) - x(1)));
    parts.push(
      `<rect class="bar ${summary.verdict}" x="${px(barStart)}" y="${px(centerY - BAR_HEIGHT / 2)}" width="${px(barWidth)}" height="${BAR_HEIGHT}" fill="${COLORS[summary.verdict]}"><title>${escapeXml(`${label}: on/off ${formatRatio(ratio)} (${summary.verdict}, ${directionText(summary)}), ${summary.pairsUsed}/${summary.pairsTotal} pairs`)}</title></rect>`,
    );
    if (summary.ratioMin !== null && summary.ratioMax !== null && summary.ratioMin !== summary.ratioMax) {
      const y = px(centerY);
      const capTop = px(centerY - 4);
      const capBottom = px(centerY + 4);
      const minX = px(x(summary.ratioMin));
      const maxX = px(x(summary.ratioMax));
      parts.push(
        `<g class="range" stroke="${RANGE_COLOR}"><line x1="${minX}" y1="${y}" x2="${maxX}" y2="${y}"/><line x1="${minX}" y1="${capTop}" x2="${minX}" y2="${capBottom}"/><line x1="${maxX}" y1="${capTop}" x2="${maxX}" y2="${capBottom}"/></g>`,
      );
    }
    const valueX = Math.max(x(ratio), x(1), summary.ratioMax === null ? 0 : x(summary.ratioMax)) + 6;
    parts.push(`<text class="value" x="${px(valueX)}" y="${px(centerY + 4)}">${formatRatio(ratio)}</text>`);
    const referenceRatio = summary.reference?.ratioToOff;
    if (typeof referenceRatio === 'number') {
      const refX = px(x(referenceRatio));
      parts.push(
        `<line class="reference" x1="${refX}" y1="${px(rowTop + 3)}" x2="${refX}" y2="${px(rowTop + ROW_HEIGHT - 3)}" stroke="${REFERENCE_COLOR}" stroke-width="3"><title>${escapeXml(`${summary.reference?.label ?? 'reference'} / off: ${formatRatio(referenceRatio)}`)}</title></line>`,
      );
    }
  }

  // The 1.0 line, drawn over the bars.
  const unityX = px(x(1));
  parts.push(
    `<line class="unity" x1="${unityX}" y1="${TOP - 10}" x2="${unityX}" y2="${plotBottom}" stroke="${UNITY_COLOR}" stroke-width="1.5"/>`,
  );
  parts.push(`<text x="${unityX}" y="${TOP - 14}" text-anchor="middle" font-size="11">1.0 = no change</text>`);

  // Axes and axis labels.
  parts.push(
    `<line class="axis" x1="${plotLeft}" y1="${plotBottom}" x2="${plotRight}" y2="${plotBottom}" stroke="#000000"/>`,
  );
  parts.push(
    `<line class="axis" x1="${plotLeft}" y1="${TOP - 6}" x2="${plotLeft}" y2="${plotBottom}" stroke="#000000"/>`,
  );
  parts.push(
    `<text class="axis-label" x="${px((plotLeft + plotRight) / 2)}" y="${plotBottom + 36}" text-anchor="middle">on / off ratio (median of per-pair ratios)</text>`,
  );
  parts.push(
    `<text class="axis-label" x="16" y="${px((TOP + plotBottom) / 2)}" text-anchor="middle" transform="rotate(-90 16 ${px((TOP + plotBottom) / 2)})">workload - metric</text>`,
  );

  // Legend.
  const legendY = plotBottom + 62;
  const legendItems: [string, string][] = [
    [`<rect x="0" y="-10" width="14" height="12" fill="${COLORS.win}"/>`, 'bypass wins'],
    [`<rect x="0" y="-10" width="14" height="12" fill="${COLORS.lose}"/>`, 'bypass loses'],
    [`<rect x="0" y="-10" width="14" height="12" fill="${COLORS.even}"/>`, 'even'],
    [`<line x1="1" y1="-4" x2="13" y2="-4" stroke="${RANGE_COLOR}"/>`, 'per-pair min-max'],
    [`<line x1="7" y1="-12" x2="7" y2="4" stroke="${REFERENCE_COLOR}" stroke-width="3"/>`, 'AF_UNIX / off'],
  ];
  parts.push(`<g class="legend" transform="translate(${plotLeft} ${legendY})">`);
  let legendX = 0;
  for (const [swatch, text] of legendItems) {
    parts.push(`<g transform="translate(${legendX} 0)">${swatch}<text x="20" y="0">${escapeXml(text)}</text></g>`);
    // Swatch, gap, text at roughly 7 px per character at 12 px, then spacing.
    legendX += 20 + text.length * 7 + 24;
  }
  parts.push('</g>');
  parts.push('</svg>');
  return parts.join('\n') + '\n';
}
