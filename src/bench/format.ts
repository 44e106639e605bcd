import type { MetricUnit } from './stats.js';

/** How to show a group of values: divide by `divisor`, print `decimals` places, label with `label`. */
export interface DisplayUnit {
  readonly label: string;
  readonly divisor: number;
  readonly decimals: number;
}

/** Decimal places giving about three significant digits at this size. */
function decimalsFor(scaledMagnitude: number): number {
  if (scaledMagnitude >= 1000) return 0;
  if (scaledMagnitude >= 100) return 1;
  if (scaledMagnitude >= 1) return 2;
  return 3;
}

function scaled(label: string, divisor: number, magnitude: number): DisplayUnit {
  return { label, divisor, decimals: decimalsFor(magnitude / divisor) };
}

/**
 * The display unit for values of `unit` whose typical size is `magnitude`, so
 * that a whole table row can share one unit and one number of decimals.
 */
export function displayUnitFor(unit: MetricUnit, magnitude: number): DisplayUnit {
  const size = Math.abs(magnitude);
  switch (unit) {
    case 'bit/s':
      if (size >= 1e9) return scaled('Gbit/s', 1e9, size);
      if (size >= 1e6) return scaled('Mbit/s', 1e6, size);
      if (size >= 1e3) return scaled('kbit/s', 1e3, size);
      return scaled('bit/s', 1, size);
    case 'conn/s':
      if (size >= 1e3) return scaled('kconn/s', 1e3, size);
      return scaled('conn/s', 1, size);
    case 'req/s':
      if (size >= 1e3) return scaled('kreq/s', 1e3, size);
      return scaled('req/s', 1, size);
    case 'us':
      if (size >= 1e3) return scaled('ms', 1e3, size);
      return scaled('us', 1, size);
    case 'packets':
      return { label: 'packets', divisor: 1, decimals: 0 };
  }
}

/** A value in a display unit. */
export function formatScaled(value: number, display: DisplayUnit): string {
  return (value / display.divisor).toFixed(display.decimals);
}

/** An on/off ratio, e.g. "1.23x". */
export function formatRatio(ratio: number): string {
  return `${ratio.toFixed(2)}x`;
}

/** A tolerance as a percentage, e.g. 0.03 -> "3%". */
export function formatPercent(fraction: number): string {
  return `${Number((fraction * 100).toFixed(2))}%`;
}

/** A value in the display unit its own size picks, with the unit, e.g. "38.17 Gbit/s"; "-" when missing. */
export function formatWithUnit(value: number | undefined, unit: MetricUnit): string {
  if (value === undefined) return '-';
  const display = displayUnitFor(unit, value);
  return `${formatScaled(value, display)} ${display.label}`;
}
