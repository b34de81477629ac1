/** A cheap health sample: CPU since the last sample, memory, root disk, load, watched processes. */
import { statfs } from "node:fs/promises";
import os from "node:os";
import type { AgentConfig } from "./config.js";
import type { ProcessSupervisor } from "./process-supervisor.js";
import { findProcesses, type WatchedProcess } from "./process-watch.js";
import { AGENT_VERSION } from "./version.js";

let previous: { idle: number; total: number } | null = null;

function cpuTimes(): { idle: number; total: number } {
  let idle = 0;
  let total = 0;
  for (const cpu of os.cpus()) {
    const t = cpu.times;
    idle += t.idle;
    total += t.user + t.nice + t.sys + t.idle + t.irq;
  }
  return { idle, total };
}

export function cpuPercent(): number {
  const now = cpuTimes();
  const base = previous ?? { idle: 0, total: 0 };
  previous = now;
  const total = now.total - base.total;
  if (total <= 0) return 0;
  return Math.min(100, Math.max(0, 100 * (1 - (now.idle - base.idle) / total)));
}

export interface HealthSample {
  agentVersion: string;
  hostname: string;
  uptimeSec: number;
  cpuPercent: number;
  load: number[];
  memoryPercent: number;
  memory: { totalBytes: number; freeBytes: number };
  diskPercent: number;
  processes: { name: string; running: boolean; pid: number | null }[];
  at: number;
}

/**
 * `watched`: the process watch's latest scan, when the caller has one; it is used instead of
 * scanning /proc again (the watch already does every 2 s).
 */
export async function sampleHealth(
  config: AgentConfig,
  supervisor?: ProcessSupervisor,
  watched?: WatchedProcess[],
): Promise<HealthSample> {
  const total = os.totalmem();
  const free = os.freemem();
  let diskPercent = 0;
  try {
    const fs = await statfs(process.platform === "win32" ? "C:\\" : "/");
    diskPercent = fs.blocks > 0 ? (100 * (fs.blocks - fs.bavail)) / fs.blocks : 0;
  } catch {
    // Not every platform answers statfs on the root; report 0 rather than fail the sample.
  }
  const processes =
    watched && watched.length === config.monitoredProcessNames.length
      ? watched
      : await findProcesses(config.monitoredProcessNames).catch(() => []);
  const supervised = Object.keys(config.processes).map((name) => {
    const pid = supervisor?.pid(name) ?? null;
    return { name, running: pid !== null, pid };
  });
  return {
    agentVersion: AGENT_VERSION,
    hostname: os.hostname(),
    uptimeSec: Math.round(os.uptime()),
    cpuPercent: Math.round(cpuPercent() * 10) / 10,
    load: os.loadavg().map((l) => Math.round(l * 100) / 100),
    memoryPercent: Math.round((1000 * (total - free)) / total) / 10,
    memory: { totalBytes: total, freeBytes: free },
    diskPercent: Math.round(diskPercent * 10) / 10,
    processes: [...processes, ...supervised],
    at: Date.now(),
  };
}
