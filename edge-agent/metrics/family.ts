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

/** One counter's value for each device, as series labelled `device`. */
export function perDevice<T extends { device: string }>(items: T[], pick: (item: T) => number): Series[] {
  return items.map((d) => one(pick(d), { device: d.device }));
}

/**
 * Per-second rates of several counters across devices that come and go (disks, interfaces):
 * `series` for each counter of a sample, then `done()`, which forgets devices not seen in it.
 */
export class DeviceRates {
  private readonly tracker = new RateTracker();
  private seen = new Set<string>();

  series<T extends { device: string }>(
    counter: string,
    items: T[],
    pick: (item: T) => number,
    atMs: number,
  ): Series[] {
    return items.flatMap((d) => {
      const key = `${counter}\u0000${d.device}`;
      this.seen.add(key);
      const r = this.tracker.rate(key, pick(d), atMs);
      return r === null ? [] : [one(round(r, 2), { device: d.device })];
    });
  }

  done(): void {
    this.tracker.keepOnly(this.seen);
    this.seen = new Set();
  }
}

export function round(value: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}
