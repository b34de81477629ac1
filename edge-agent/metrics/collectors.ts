/**
 * The system collectors: CPU, memory, disk, network, processes. On Linux each reads /proc and
 * statfs directly; elsewhere (macOS, Windows) it asks `systeminformation`, which shells out
 * where the platform has no cheaper way. Names follow node_exporter where the two overlap
 * (node_cpu_seconds_total, node_load1, node_filesystem_avail_bytes, ...); derived values an alert rule wants
 * (percentages, per-second rates) are fleetdeck_* gauges.
 */
import { readdirSync, readFileSync } from "node:fs";
import { statfs } from "node:fs/promises";
import os from "node:os";
import {
  DeviceRates,
  type Family,
  family,
  type Labels,
  one,
  perDevice,
  round,
  type Series,
} from "./family.js";
import {
  CPU_MODES,
  countTcpStates,
  type DiskCounters,
  type NetCounters,
  parseDiskstats,
  parseMeminfo,
  parseMounts,
  parseNetDev,
  parsePidStat,
  parseProcStat,
  readUid,
  TCP_STATES,
  userName,
} from "./procfs.js";

export type Platform = "linux" | "portable";

export interface Collector {
  readonly name: string;
  /** Default seconds between samples. */
  readonly intervalSecs: number;
  collect(): Promise<Family[]>;
}

export function defaultPlatform(): Platform {
  return process.platform === "linux" ? "linux" : "portable";
}

const proc = (file: string) => readFileSync(`/proc/${file}`, "utf8");

/** systeminformation, loaded only where it is used (off Linux, or when asked for). */
let siModule: typeof import("systeminformation") | null = null;
async function si(): Promise<typeof import("systeminformation")> {
  siModule ??= (await import("systeminformation")).default as unknown as typeof import("systeminformation");
  return siModule;
}

// ---------- CPU ----------

export class CpuCollector implements Collector {
  readonly name = "cpu";
  private previous: Map<string, Record<string, number>> | null = null;

  constructor(
    readonly intervalSecs: number,
    private readonly platform: Platform = defaultPlatform(),
  ) {}

  async collect(): Promise<Family[]> {
    const times = this.platform === "linux" ? parseProcStat(proc("stat")) : portableCpuTimes();
    const seconds: Series[] = [];
    for (const [cpu, t] of times) {
      if (cpu === "all") continue;
      for (const [mode, value] of Object.entries(t)) seconds.push(one(round(value, 2), { cpu, mode }));
    }
    const usage: Series[] = [];
    const coreBusy: Series[] = [];
    if (this.previous) {
      for (const [cpu, t] of times) {
        const before = this.previous.get(cpu);
        if (!before) continue;
        const delta: Record<string, number> = {};
        let total = 0;
        for (const [mode, value] of Object.entries(t)) {
          // A counter that went backwards (hotplugged core) counts from zero.
          const d = value >= (before[mode] ?? 0) ? value - (before[mode] ?? 0) : value;
          delta[mode] = d;
          total += d;
        }
        if (total <= 0) continue;
        const pct = (mode: string) => round(Math.min(100, (100 * (delta[mode] ?? 0)) / total), 2);
        if (cpu === "all") {
          for (const mode of ["user", "system", "idle", "iowait", "steal"])
            usage.push(one(pct(mode), { mode }));
          usage.push(one(round(Math.max(0, 100 - pct("idle") - pct("iowait")), 2), { mode: "busy" }));
        } else {
          coreBusy.push(one(round(Math.max(0, 100 - pct("idle") - pct("iowait")), 2), { cpu }));
        }
      }
    }
    this.previous = times;
    const [l1, l5, l15] = os.loadavg() as [number, number, number];
    const out = [
      family(
        "node_cpu_seconds_total",
        "Seconds the CPUs spent in each mode.",
        "counter",
        ["cpu", "mode"],
        seconds,
      ),
      family("node_load1", "1m load average.", "gauge", [], [one(l1)]),
      family("node_load5", "5m load average.", "gauge", [], [one(l5)]),
      family("node_load15", "15m load average.", "gauge", [], [one(l15)]),
    ];
    if (usage.length > 0) {
      out.push(
        family(
          "fleetdeck_cpu_usage_percent",
          "Share of all CPUs' time in each mode since the last sample (busy = not idle or iowait).",
          "gauge",
          ["mode"],
          usage,
        ),
        family(
          "fleetdeck_cpu_core_busy_percent",
          "Share of each core's time busy since the last sample.",
          "gauge",
          ["cpu"],
          coreBusy,
        ),
      );
    }
    return out;
  }
}

/** os.cpus() times (milliseconds) as seconds per mode; iowait and steal are Linux-only. */
function portableCpuTimes(): Map<string, Record<string, number>> {
  const out = new Map<string, Record<string, number>>();
  const all: Record<string, number> = Object.fromEntries(CPU_MODES.map((m) => [m, 0]));
  os.cpus().forEach((c, i) => {
    const t = { user: c.times.user / 1000, nice: c.times.nice / 1000, system: c.times.sys / 1000 };
    const row = { ...t, idle: c.times.idle / 1000, irq: c.times.irq / 1000 };
    out.set(String(i), row);
    for (const [k, v] of Object.entries(row)) all[k] = (all[k] ?? 0) + v;
  });
  out.set("all", all);
  return out;
}

// ---------- memory ----------

export class MemoryCollector implements Collector {
  readonly name = "memory";
  constructor(
    readonly intervalSecs: number,
    private readonly platform: Platform = defaultPlatform(),
  ) {}

  async collect(): Promise<Family[]> {
    let m: Record<string, number>;
    if (this.platform === "linux") {
      const info = parseMeminfo(proc("meminfo"));
      const get = (k: string) => info.get(k) ?? 0;
      m = {
        MemTotal: get("MemTotal"),
        MemFree: get("MemFree"),
        MemAvailable: info.get("MemAvailable") ?? get("MemFree") + get("Cached") + get("Buffers"),
        Buffers: get("Buffers"),
        Cached: get("Cached"),
        SwapTotal: get("SwapTotal"),
        SwapFree: get("SwapFree"),
      };
    } else {
      const s = await (await si()).mem();
      m = {
        MemTotal: s.total,
        MemFree: s.free,
        MemAvailable: s.available,
        Buffers: s.buffers,
        Cached: s.cached,
        SwapTotal: s.swaptotal,
        SwapFree: s.swapfree,
      };
    }
    const used = Math.max(0, m.MemTotal! - m.MemAvailable!);
    const swapUsed = Math.max(0, m.SwapTotal! - m.SwapFree!);
    const pct = (part: number, whole: number) => (whole > 0 ? round((100 * part) / whole, 2) : 0);
    // node_exporter's node_memory_MemTotal_bytes style fails `promtool check metrics` (camelCase),
    // so these are snake_case fleetdeck_* names; the README maps them.
    const names: Record<string, [string, string]> = {
      MemTotal: ["fleetdeck_memory_total_bytes", "Physical memory."],
      MemFree: ["fleetdeck_memory_free_bytes", "Memory not used for anything."],
      MemAvailable: ["fleetdeck_memory_available_bytes", "Memory available for new work without swapping."],
      Buffers: ["fleetdeck_memory_buffers_bytes", "Memory in kernel buffers."],
      Cached: ["fleetdeck_memory_cached_bytes", "Memory in the page cache."],
      SwapTotal: ["fleetdeck_swap_total_bytes", "Swap space."],
      SwapFree: ["fleetdeck_swap_free_bytes", "Swap space not in use."],
    };
    return [
      ...Object.entries(m).map(([key, value]) => {
        const [name, help] = names[key]!;
        return family(name, help, "gauge", [], [one(value)]);
      }),
      family("fleetdeck_memory_used_bytes", "Memory in use (total - available).", "gauge", [], [one(used)]),
      family(
        "fleetdeck_memory_used_percent",
        "Memory in use as a share of the total.",
        "gauge",
        [],
        [one(pct(used, m.MemTotal!))],
      ),
      family("fleetdeck_swap_used_bytes", "Swap in use.", "gauge", [], [one(swapUsed)]),
      family(
        "fleetdeck_swap_used_percent",
        "Swap in use as a share of the total (0 without swap).",
        "gauge",
        [],
        [one(pct(swapUsed, m.SwapTotal!))],
      ),
    ];
  }
}

// ---------- disk ----------

const FS_LABELS = ["device", "fstype", "mountpoint"] as const;

export class DiskCollector implements Collector {
  readonly name = "disk";
  private readonly rates = new DeviceRates();

  constructor(
    readonly intervalSecs: number,
    private readonly platform: Platform = defaultPlatform(),
  ) {}

  async collect(): Promise<Family[]> {
    const usage = this.platform === "linux" ? await linuxFilesystems() : await portableFilesystems();
    const io = this.platform === "linux" ? parseDiskstats(proc("diskstats")) : await portableDiskIo();
    const at = Date.now();
    const fs = (pick: (f: FsUsage) => number) => usage.map((f) => one(pick(f), f.labels));
    const counters = (pick: (d: DiskCounters) => number) => perDevice(io, pick);
    const readBytesRate = this.rates.series("rb", io, (d) => d.readBytes, at);
    const writeBytesRate = this.rates.series("wb", io, (d) => d.writtenBytes, at);
    const readIops = this.rates.series("r", io, (d) => d.readsCompleted, at);
    const writeIops = this.rates.series("w", io, (d) => d.writesCompleted, at);
    this.rates.done();
    return [
      family(
        "node_filesystem_size_bytes",
        "Filesystem size in bytes.",
        "gauge",
        FS_LABELS,
        fs((f) => f.size),
      ),
      family(
        "node_filesystem_free_bytes",
        "Filesystem free space in bytes.",
        "gauge",
        FS_LABELS,
        fs((f) => f.free),
      ),
      family(
        "node_filesystem_avail_bytes",
        "Filesystem space available to non-root users in bytes.",
        "gauge",
        FS_LABELS,
        fs((f) => f.avail),
      ),
      family(
        "fleetdeck_filesystem_used_percent",
        "Filesystem space in use as a share of what users can have (used / (used + avail)), as df shows.",
        "gauge",
        FS_LABELS,
        fs((f) =>
          f.size - f.free + f.avail > 0
            ? round((100 * (f.size - f.free)) / (f.size - f.free + f.avail), 2)
            : 0,
        ),
      ),
      family(
        "node_disk_read_bytes_total",
        "Bytes read successfully.",
        "counter",
        ["device"],
        counters((d) => d.readBytes),
      ),
      family(
        "node_disk_written_bytes_total",
        "Bytes written successfully.",
        "counter",
        ["device"],
        counters((d) => d.writtenBytes),
      ),
      family(
        "node_disk_reads_completed_total",
        "Reads completed successfully.",
        "counter",
        ["device"],
        counters((d) => d.readsCompleted),
      ),
      family(
        "node_disk_writes_completed_total",
        "Writes completed successfully.",
        "counter",
        ["device"],
        counters((d) => d.writesCompleted),
      ),
      family("fleetdeck_disk_read_bytes_per_second", "Read throughput.", "gauge", ["device"], readBytesRate),
      family(
        "fleetdeck_disk_write_bytes_per_second",
        "Write throughput.",
        "gauge",
        ["device"],
        writeBytesRate,
      ),
      family("fleetdeck_disk_read_iops", "Reads completed per second.", "gauge", ["device"], readIops),
      family("fleetdeck_disk_write_iops", "Writes completed per second.", "gauge", ["device"], writeIops),
    ];
  }
}

interface FsUsage {
  labels: Labels;
  size: number;
  free: number;
  avail: number;
}

async function linuxFilesystems(): Promise<FsUsage[]> {
  const mounts = parseMounts(readFileSync("/proc/self/mounts", "utf8"));
  const out: FsUsage[] = [];
  await Promise.all(
    mounts.map(async (m) => {
      try {
        const s = await statfs(m.mountpoint);
        out.push({
          labels: { device: m.device, fstype: m.fstype, mountpoint: m.mountpoint },
          size: s.blocks * s.bsize,
          free: s.bfree * s.bsize,
          avail: s.bavail * s.bsize,
        });
      } catch {
        // Unreadable to this user, or unmounted since: no series for it this time.
      }
    }),
  );
  return out.sort((a, b) => (a.labels.mountpoint! < b.labels.mountpoint! ? -1 : 1));
}

async function portableFilesystems(): Promise<FsUsage[]> {
  const list = await (await si()).fsSize();
  return list.map((f) => ({
    labels: { device: f.fs, fstype: f.type, mountpoint: f.mount },
    size: f.size,
    free: f.size - f.used,
    avail: f.available,
  }));
}

async function portableDiskIo(): Promise<DiskCounters[]> {
  const io = await (await si()).disksIO();
  if (!io) return [];
  // systeminformation reports all disks together and counts operations, not bytes; bytes come
  // from fsStats where the platform has it.
  const bytes = await (await si()).fsStats().catch(() => null);
  return [
    {
      device: "all",
      readsCompleted: io.rIO,
      writesCompleted: io.wIO,
      readBytes: bytes?.rx ?? 0,
      writtenBytes: bytes?.wx ?? 0,
    },
  ];
}

// ---------- network ----------

export class NetworkCollector implements Collector {
  readonly name = "network";
  private readonly rates = new DeviceRates();

  constructor(
    readonly intervalSecs: number,
    private readonly platform: Platform = defaultPlatform(),
  ) {}

  async collect(): Promise<Family[]> {
    const at = Date.now();
    const ifaces = this.platform === "linux" ? parseNetDev(proc("net/dev")) : await portableNet();
    const states: Record<string, number> = Object.fromEntries(Object.values(TCP_STATES).map((s) => [s, 0]));
    if (this.platform === "linux") {
      for (const file of ["net/tcp", "net/tcp6"]) {
        try {
          countTcpStates(proc(file), states);
        } catch {
          // No IPv6 on this host: nothing to count.
        }
      }
    } else {
      for (const c of await (await si()).networkConnections().catch(() => [])) {
        if (c.protocol?.startsWith("tcp")) {
          const state = c.state.toLowerCase();
          if (state in states) states[state] = states[state]! + 1;
        }
      }
    }
    const counters = (pick: (n: NetCounters) => number) => perDevice(ifaces, pick);
    const rate = (counter: string, pick: (n: NetCounters) => number) =>
      this.rates.series(counter, ifaces, pick, at);
    const families = [
      family(
        "node_network_receive_bytes_total",
        "Bytes received.",
        "counter",
        ["device"],
        counters((n) => n.rxBytes),
      ),
      family(
        "node_network_transmit_bytes_total",
        "Bytes sent.",
        "counter",
        ["device"],
        counters((n) => n.txBytes),
      ),
      family(
        "node_network_receive_packets_total",
        "Packets received.",
        "counter",
        ["device"],
        counters((n) => n.rxPackets),
      ),
      family(
        "node_network_transmit_packets_total",
        "Packets sent.",
        "counter",
        ["device"],
        counters((n) => n.txPackets),
      ),
      family(
        "fleetdeck_network_receive_bytes_per_second",
        "Receive throughput.",
        "gauge",
        ["device"],
        rate("rb", (n) => n.rxBytes),
      ),
      family(
        "fleetdeck_network_transmit_bytes_per_second",
        "Send throughput.",
        "gauge",
        ["device"],
        rate("tb", (n) => n.txBytes),
      ),
      family(
        "fleetdeck_network_receive_packets_per_second",
        "Packets received per second.",
        "gauge",
        ["device"],
        rate("rp", (n) => n.rxPackets),
      ),
      family(
        "fleetdeck_network_transmit_packets_per_second",
        "Packets sent per second.",
        "gauge",
        ["device"],
        rate("tp", (n) => n.txPackets),
      ),
      family(
        "node_tcp_connection_states",
        "TCP connections by state (IPv4 and IPv6).",
        "gauge",
        ["state"],
        Object.entries(states).map(([state, n]) => one(n, { state })),
      ),
    ];
    this.rates.done();
    return families;
  }
}

async function portableNet(): Promise<NetCounters[]> {
  const stats = await (await si()).networkStats("*");
  return stats.map((s) => ({
    device: s.iface,
    rxBytes: s.rx_bytes,
    txBytes: s.tx_bytes,
    // systeminformation has no packet counters; errors are the closest it offers, so report 0.
    rxPackets: 0,
    txPackets: 0,
  }));
}

// ---------- processes ----------

interface ProcessSample {
  pid: number;
  name: string;
  cpuPercent: number;
  rssBytes: number;
  user: string;
}

const PROC_LABELS = ["pid", "name", "user"] as const;

export class ProcessCollector implements Collector {
  readonly name = "processes";
  private previous = new Map<string, number>();
  private previousAt = 0;

  /** `topN` bounds the series: the top N by CPU and the top N by memory (at most 2N). */
  constructor(
    readonly intervalSecs: number,
    private readonly topN: number,
    private readonly platform: Platform = defaultPlatform(),
  ) {}

  async collect(): Promise<Family[]> {
    const { all, total } = this.platform === "linux" ? await this.linux() : await portableProcesses();
    const byCpu = [...all].sort((a, b) => b.cpuPercent - a.cpuPercent).slice(0, this.topN);
    const byMem = [...all].sort((a, b) => b.rssBytes - a.rssBytes).slice(0, this.topN);
    const top = new Map<number, ProcessSample>();
    for (const p of [...byCpu, ...byMem]) top.set(p.pid, p);
    if (this.platform === "linux") {
      // Only the few reported processes need their owner looked up.
      for (const p of top.values()) {
        const uid = readUid(p.pid);
        p.user = uid === null ? "" : userName(uid);
      }
    }
    const labels = (p: ProcessSample): Labels => ({ pid: String(p.pid), name: p.name, user: p.user });
    return [
      family("fleetdeck_processes", "Processes on the host.", "gauge", [], [one(total)]),
      family(
        "fleetdeck_top_process_cpu_percent",
        "CPU of the top processes by CPU and by memory, in percent of one core.",
        "gauge",
        PROC_LABELS,
        [...top.values()].map((p) => one(p.cpuPercent, labels(p))),
      ),
      family(
        "fleetdeck_top_process_resident_memory_bytes",
        "Resident memory of the top processes by CPU and by memory.",
        "gauge",
        PROC_LABELS,
        [...top.values()].map((p) => one(p.rssBytes, labels(p))),
      ),
    ];
  }

  /**
   * Reads /proc/<pid>/stat for every process, yielding to the event loop every 200 so a host with
   * thousands of processes never blocks the agent for long. Processes that vanish mid-scan are
   * skipped quietly.
   */
  private async linux(): Promise<{ all: ProcessSample[]; total: number }> {
    const at = Date.now();
    const elapsed = this.previousAt ? (at - this.previousAt) / 1000 : 0;
    const pids = readdirSync("/proc").filter((d) => d.charCodeAt(0) >= 48 && d.charCodeAt(0) <= 57);
    const next = new Map<string, number>();
    const all: ProcessSample[] = [];
    for (let i = 0; i < pids.length; i++) {
      if (i > 0 && i % 200 === 0) await new Promise((r) => setImmediate(r));
      const pid = Number(pids[i]);
      let text: string;
      try {
        text = readFileSync(`/proc/${pid}/stat`, "utf8");
      } catch {
        continue; // gone, or not ours to read
      }
      const s = parsePidStat(pid, text);
      if (!s) continue;
      // pid + start time: a reused pid is a different process, not a CPU spike.
      const key = `${pid}:${s.startTicks}`;
      next.set(key, s.cpuSeconds);
      const before = this.previous.get(key);
      const cpu =
        before !== undefined && elapsed > 0 ? (100 * Math.max(0, s.cpuSeconds - before)) / elapsed : 0;
      all.push({ pid, name: s.name, cpuPercent: round(cpu, 2), rssBytes: s.rssBytes, user: "" });
    }
    this.previous = next;
    this.previousAt = at;
    return { all, total: all.length };
  }
}

async function portableProcesses(): Promise<{ all: ProcessSample[]; total: number }> {
  const p = await (await si()).processes();
  return {
    total: p.all,
    all: p.list.map((x) => ({
      pid: x.pid,
      name: x.name,
      cpuPercent: round(x.cpu, 2),
      rssBytes: x.memRss * 1024,
      user: x.user,
    })),
  };
}
