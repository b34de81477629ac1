/**
 * Parsers for the Linux /proc files the collectors read. Reading these files is cheaper than any
 * library call (no child processes, no per-call allocation of unrelated fields); each parser is a
 * pure function of the file's text so it can be tested on fixed input as well as the live host.
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";

export const CPU_MODES = ["user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"] as const;
export type CpuMode = (typeof CPU_MODES)[number];

/** Clock ticks per second and page size, asked of the system once (the usual values otherwise). */
export const SYSTEM = (() => {
  const ask = (name: string, fallback: number) => {
    try {
      const n = Number(execFileSync("getconf", [name], { encoding: "utf8", timeout: 2000 }).trim());
      return Number.isFinite(n) && n > 0 ? n : fallback;
    } catch {
      return fallback;
    }
  };
  return process.platform === "linux"
    ? { clockTicks: ask("CLK_TCK", 100), pageSize: ask("PAGESIZE", 4096) }
    : { clockTicks: 100, pageSize: 4096 };
})();

/** /proc/stat: seconds spent in each mode, per core ("0", "1", ...) and for all ("all"). */
export function parseProcStat(text: string): Map<string, Record<CpuMode, number>> {
  const out = new Map<string, Record<CpuMode, number>>();
  for (const line of text.split("\n")) {
    if (!line.startsWith("cpu")) continue;
    const parts = line.trim().split(/\s+/);
    const name = parts[0] === "cpu" ? "all" : parts[0]!.slice(3);
    const times = {} as Record<CpuMode, number>;
    CPU_MODES.forEach((mode, i) => {
      times[mode] = Number(parts[i + 1] ?? 0) / SYSTEM.clockTicks;
    });
    out.set(name, times);
  }
  return out;
}

/** /proc/meminfo in bytes, keyed as the file names them (MemTotal, Cached, SwapFree, ...). */
export function parseMeminfo(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    const m = /^([A-Za-z0-9_()]+):\s+(\d+)(?:\s+kB)?/.exec(line);
    if (m) out.set(m[1]!, Number(m[2]) * (line.includes("kB") ? 1024 : 1));
  }
  return out;
}

export interface Mount {
  device: string;
  mountpoint: string;
  fstype: string;
}

/** Filesystems nobody wants usage for (node_exporter leaves out the same kinds). */
const IGNORED_FSTYPES =
  /^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|fusectl|hugetlbfs|iso9660|mqueue|nsfs|proc|procfs|pstore|rpc_pipefs|securityfs|selinuxfs|squashfs|sysfs|tracefs|tmpfs|ramfs|nfsd|fuse\.lxcfs|fuse\.snapfuse)$/;
const IGNORED_MOUNTPOINTS =
  /^\/(dev|proc|run\/credentials\/.+|sys|var\/lib\/docker\/.+|var\/lib\/containers\/.+)($|\/)/;

/** /proc/self/mounts: real filesystems, one entry per mountpoint (the last mount wins). */
export function parseMounts(text: string): Mount[] {
  const byPoint = new Map<string, Mount>();
  for (const line of text.split("\n")) {
    const [device, rawPoint, fstype] = line.split(" ");
    if (!device || !rawPoint || !fstype) continue;
    const mountpoint = rawPoint.replace(/\\040/g, " ");
    if (IGNORED_FSTYPES.test(fstype) || IGNORED_MOUNTPOINTS.test(mountpoint)) continue;
    byPoint.set(mountpoint, { device, mountpoint, fstype });
  }
  return [...byPoint.values()];
}

export interface DiskCounters {
  device: string;
  readsCompleted: number;
  readBytes: number;
  writesCompleted: number;
  writtenBytes: number;
}

/** Partitions, ram and loop devices: their I/O is already counted on the whole disk. */
const IGNORED_DISKS = /^(z?ram|loop|fd|(h|s|v|xv)d[a-z]+|nvme\d+n\d+p|mmcblk\d+p)\d+$/;

/** /proc/diskstats (sectors are always 512 bytes there, whatever the device's own size). */
export function parseDiskstats(text: string): DiskCounters[] {
  const out: DiskCounters[] = [];
  for (const line of text.split("\n")) {
    const p = line.trim().split(/\s+/);
    if (p.length < 14) continue;
    const device = p[2]!;
    if (IGNORED_DISKS.test(device)) continue;
    out.push({
      device,
      readsCompleted: Number(p[3]),
      readBytes: Number(p[5]) * 512,
      writesCompleted: Number(p[7]),
      writtenBytes: Number(p[9]) * 512,
    });
  }
  return out;
}

export interface NetCounters {
  device: string;
  rxBytes: number;
  rxPackets: number;
  txBytes: number;
  txPackets: number;
}

/** /proc/net/dev. */
export function parseNetDev(text: string): NetCounters[] {
  const out: NetCounters[] = [];
  for (const line of text.split("\n").slice(2)) {
    const colon = line.indexOf(":");
    if (colon < 0) continue;
    const device = line.slice(0, colon).trim();
    const p = line
      .slice(colon + 1)
      .trim()
      .split(/\s+/)
      .map(Number);
    if (p.length < 16) continue;
    out.push({ device, rxBytes: p[0]!, rxPackets: p[1]!, txBytes: p[8]!, txPackets: p[9]! });
  }
  return out;
}

/** TCP states as /proc/net/tcp numbers them, named as node_exporter's tcpstat collector names them. */
export const TCP_STATES: Record<string, string> = {
  "01": "established",
  "02": "syn_sent",
  "03": "syn_recv",
  "04": "fin_wait1",
  "05": "fin_wait2",
  "06": "time_wait",
  "07": "close",
  "08": "close_wait",
  "09": "last_ack",
  "0A": "listen",
  "0B": "closing",
};

/** Counts of connections by state in /proc/net/tcp or tcp6, added into `counts`. */
export function countTcpStates(text: string, counts: Record<string, number>): void {
  let start = text.indexOf("\n") + 1;
  while (start > 0 && start < text.length) {
    const end = text.indexOf("\n", start);
    const line = text.slice(start, end < 0 ? undefined : end);
    // "  sl  local_address rem_address   st ..." : the state is the fourth column.
    const p = line.trim().split(/\s+/, 4);
    const state = TCP_STATES[p[3] ?? ""];
    if (state) counts[state] = (counts[state] ?? 0) + 1;
    start = end < 0 ? -1 : end + 1;
  }
}

export interface ProcStat {
  pid: number;
  name: string;
  cpuSeconds: number;
  rssBytes: number;
  startTicks: number;
}

/** /proc/<pid>/stat; the name is in parentheses and may itself hold spaces and parentheses. */
export function parsePidStat(pid: number, text: string): ProcStat | null {
  const open = text.indexOf("(");
  const close = text.lastIndexOf(")");
  if (open < 0 || close < open) return null;
  const rest = text.slice(close + 2).split(" ");
  // rest[0] is field 3 (state); utime is field 14, stime 15, starttime 22, rss 24.
  const utime = Number(rest[11]);
  const stime = Number(rest[12]);
  return {
    pid,
    name: text.slice(open + 1, close),
    cpuSeconds: (utime + stime) / SYSTEM.clockTicks,
    startTicks: Number(rest[19]),
    rssBytes: Number(rest[21]) * SYSTEM.pageSize,
  };
}

/** The real uid in /proc/<pid>/status, or null when the process is gone. */
export function readUid(pid: number): number | null {
  try {
    const m = /^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

let users: { names: Map<number, string>; at: number } | null = null;

/** User names from /etc/passwd, re-read at most every five minutes; the uid when unknown. */
export function userName(uid: number): string {
  if (!users || Date.now() - users.at > 300_000) {
    const names = new Map<number, string>();
    try {
      for (const line of readFileSync("/etc/passwd", "utf8").split("\n")) {
        const [name, , id] = line.split(":");
        if (name && id) names.set(Number(id), name);
      }
    } catch {}
    users = { names, at: Date.now() };
  }
  return users.names.get(uid) ?? String(uid);
}
