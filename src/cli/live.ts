/** Helpers of the commands that keep running until Ctrl-C (trace, status --watch, run). */

/**
 * `stopped` resolves on SIGINT or SIGTERM (or stop()); the signal handlers
 * are removed then, or by dispose().
 */
export function stopSignal(): { stopped: Promise<string>; stop(reason: string): void; dispose(): void } {
  let resolveStop: (reason: string) => void = () => {};
  const stopped = new Promise<string>((resolve) => (resolveStop = resolve));
  const dispose = () => {
    process.off('SIGINT', on);
    process.off('SIGTERM', on);
  };
  const stop = (reason: string) => {
    dispose();
    resolveStop(reason);
  };
  const on = (signal: NodeJS.Signals) => stop(signal);
  process.on('SIGINT', on);
  process.on('SIGTERM', on);
  return { stopped, stop, dispose };
}

const pad2 = (n: number) => String(n).padStart(2, '0');

/** Local time of day with milliseconds, e.g. 14:03:22.123. */
export function timeOfDay(d: Date): string {
  return `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}.${String(d.getMilliseconds()).padStart(3, '0')}`;
}
