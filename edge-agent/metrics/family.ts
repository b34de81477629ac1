/**
 * What a collector hands back: metric families with their current series. The exporter turns
 * them into prom-client metrics for /metrics; the alert engine reads them from the snapshot.
 */
export type Labels = Record<string, string>;

export interface Series {
  labels: Labels;
  value: number;
}

export interface Family {
  name: string;
  help: string;
  type: "gauge" | "counter";
  labelNames: readonly string[];
  series: Series[];
}

export function family(
  name: string,
  help: string,
  type: Family["type"],
  labelNames: readonly string[],
  series: Series[],
): Family {
  return { name, help, type, labelNames, series };
}

export function one(value: number, labels: Labels = {}): Series {
  return { labels, value };
}

/**
 * Per-second rates from monotonically increasing counters. A counter that went down was reset
 * (device re-attached, interface re-created, host rebooted): the new value is what accrued since
 * the reset, so the rate stays non-negative and is never a huge negative spike.
 */
export class RateTracker {
  private readonly last = new Map<string, { value: number; at: number }>();

  /** The rate since the previous sample of `key`, or null on its first sample. */
  rate(key: string, value: number, atMs: number): number | null {
    const prev = this.last.get(key);
    this.last.set(key, { value, at: atMs });
    if (!prev || atMs <= prev.at) return null;
    const delta = value >= prev.value ? value - prev.value : value;
    return delta / ((atMs - prev.at) / 1000);
  }

  /** Forgets series not seen in the latest sample (interfaces and devices come and go). */
  keepOnly(keys: Set<string>): void {
    for (const key of this.last.keys()) if (!keys.has(key)) this.last.delete(key);
  }
}

export function round(value: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}
