/**
 * BulkLogger: log lines (the agent's own and its devices') batched into per-client Redis
 * streams. A bounded queue; a flush at `batchSize` entries or every `flushIntervalMs`,
 * whichever comes first; one request per batch (a pipeline over REST, a script call over TCP),
 * each XADD trimmed with `MAXLEN ~`.
 *
 * Guarantees (RELIABILITY.md, invariant 6): a line accepted by `log()`/`logSync()` reaches
 * Redis or waits in the on-disk spool, in order. When Redis is down, batches are written to
 * the spool (one fsynced file per batch) and replayed, oldest first, when it answers again;
 * while anything is spooled, new batches queue behind it so order holds. Lines are dropped
 * only when a bound forces it: the in-memory queue (`queueLimit`, oldest first) or the spool
 * (`spoolLimitBytes`, oldest batch first); every drop is counted (`dropped`).
 */
import {
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeSync,
} from "node:fs";
import path from "node:path";
import type { Redis as UpstashRedis } from "@upstash/redis";
import type { Redis as IORedis } from "ioredis";

export interface LogEntry {
  /** The Redis stream key. */
  stream: string;
  fields: Record<string, string>;
}

/** One interface over both ways to reach Redis. */
export interface LogSink {
  readonly kind: string;
  /**
   * How many batches may be on the wire at once. More than one only where the transport keeps
   * them in order: one TCP connection does (Redis runs its commands in the order they arrive);
   * separate HTTP requests do not.
   */
  readonly maxInFlight: number;
  write(batch: LogEntry[], maxLen: number): Promise<void>;
  close(): Promise<void>;
}

export class UpstashLogSink implements LogSink {
  readonly kind = "upstash-rest";
  readonly maxInFlight = 1;
  constructor(private readonly redis: UpstashRedis) {}
  async write(batch: LogEntry[], maxLen: number): Promise<void> {
    const p = this.redis.pipeline();
    for (const e of batch)
      p.xadd(e.stream, "*", e.fields, { trim: { type: "MAXLEN", threshold: maxLen, comparison: "~" } });
    await p.exec();
  }
  async close(): Promise<void> {}
}

/**
 * XADD for every entry of a batch, in one script call: KEYS are the batch's streams; ARGV is
 * maxLen, then per entry its stream's index in KEYS, its field count, and its fields and values.
 * Each stream is trimmed (MAXLEN ~) once after the batch rather than on every XADD: the same
 * bound, as nobody sees a stream between the two (a script runs atomically), and 16% more lines
 * per second through Redis in an A/B run (bench/RESULTS.md, bench/bulk-logger 2026-11-29).
 */
const XADD_BATCH = `
local i = 2
local n = 0
while i <= #ARGV do
  local last = i + 1 + tonumber(ARGV[i + 1]) * 2
  redis.call('XADD', KEYS[tonumber(ARGV[i])], '*', unpack(ARGV, i + 2, last))
  i = last + 1
  n = n + 1
end
for k = 1, #KEYS do
  redis.call('XTRIM', KEYS[k], 'MAXLEN', '~', ARGV[1])
end
return n`;

type BatchRedis = IORedis & { fleetdeckXaddBatch(...args: (string | number)[]): Promise<number> };

export class TcpRedisLogSink implements LogSink {
  readonly kind = "redis-tcp";
  // Several: the next batches are encoded and sent while Redis works through one (4 against 2:
  // about 10-30% more lines/s on loopback; more gave nothing more).
  readonly maxInFlight = 4;
  private readonly redis: BatchRedis;
  constructor(redis: IORedis) {
    // One command per batch instead of one per line: in ioredis each command costs several
    // microseconds of client CPU (command object, encoding, promise), which on loopback is most
    // of a batched line's cost. ioredis sends EVALSHA and falls back to EVAL once if Redis lacks it
    // (after a restart). One Redis or Valkey node: a batch naming streams in several hash slots
    // would be refused by a cluster (CROSSSLOT).
    redis.defineCommand("fleetdeckXaddBatch", { lua: XADD_BATCH });
    this.redis = redis as BatchRedis;
  }
  async write(batch: LogEntry[], maxLen: number): Promise<void> {
    const keys: string[] = [];
    const keyIndex = new Map<string, number>();
    const argv: (string | number)[] = [maxLen];
    for (const e of batch) {
      let k = keyIndex.get(e.stream);
      if (k === undefined) {
        k = keys.push(e.stream);
        keyIndex.set(e.stream, k);
      }
      // The field count is filled in after the fields (no array of entries per line).
      const countAt = argv.push(k, 0) - 1;
      let count = 0;
      for (const field in e.fields) {
        argv.push(field, e.fields[field]!);
        count++;
      }
      argv[countAt] = count;
    }
    await this.redis.fleetdeckXaddBatch(keys.length, ...keys, ...argv);
  }
  async close(): Promise<void> {
    this.redis.disconnect();
  }
}

export interface BulkLoggerOptions {
  sink: LogSink;
  spoolDir: string;
  batchSize: number;
  flushIntervalMs: number;
  queueLimit: number;
  maxLen: number;
  spoolLimitBytes?: number;
  onError?: (error: unknown) => void;
}

export interface BulkLoggerStats {
  queued: number;
  spooledBatches: number;
  spooledEntries: number;
  spoolBytes: number;
  dropped: number;
  written: number;
  redisHealthy: boolean;
}

/**
 * Queued entries in chunks of at most one batch: taking a batch or dropping the oldest entry
 * costs a batch, not the whole queue (Array#splice(0, n) on a queue of 200,000 lines moves all
 * of them, once per batch).
 */
class BatchQueue {
  private chunks: LogEntry[][] = [];
  length = 0;
  constructor(private readonly batchSize: number) {}
  push(entry: LogEntry): void {
    const last = this.chunks.at(-1);
    if (last && last.length < this.batchSize) last.push(entry);
    else this.chunks.push([entry]);
    this.length++;
  }
  dropOldest(): void {
    const first = this.chunks[0];
    if (!first) return;
    first.shift();
    if (first.length === 0) this.chunks.shift();
    this.length--;
  }
  /** The oldest entries, at most one batch. */
  take(): LogEntry[] {
    const batch = this.chunks.shift() ?? [];
    this.length -= batch.length;
    return batch;
  }
}

export class BulkLogger {
  private readonly queue: BatchQueue;
  private timer: NodeJS.Timeout | null = null;
  private flushing: Promise<void> | null = null;
  private closed = false;
  private seq: number;
  private spoolBytes = 0;
  private spoolEntries = 0;
  private spoolFiles: string[];
  private stats = { dropped: 0, written: 0, redisHealthy: true };
  private readonly spoolLimit: number;

  constructor(private readonly options: BulkLoggerOptions) {
    this.queue = new BatchQueue(options.batchSize);
    mkdirSync(options.spoolDir, { recursive: true });
    this.spoolLimit = options.spoolLimitBytes ?? 256 * 1024 * 1024;
    // Batches left by an earlier run are replayed first.
    this.spoolFiles = readdirSync(options.spoolDir)
      .filter((f) => f.endsWith(".batch"))
      .sort();
    for (const f of this.spoolFiles) {
      const file = path.join(options.spoolDir, f);
      this.spoolBytes += statSync(file).size;
      this.spoolEntries += countLines(file);
    }
    this.seq =
      this.spoolFiles.length > 0 ? Number.parseInt(this.spoolFiles.at(-1)!, 10) + 1 : Date.now() * 1000;
    this.timer = setInterval(() => void this.flush(), options.flushIntervalMs);
    this.timer.unref();
  }

  /** For async callers: waits for room when the queue is full instead of dropping. */
  async log(entry: LogEntry): Promise<void> {
    if (this.queue.length >= this.options.queueLimit) await this.flush();
    this.logSync(entry);
  }

  /** For sync callers: never waits; past the bound the oldest queued line is dropped (counted). */
  logSync(entry: LogEntry): void {
    if (this.closed) {
      this.stats.dropped++;
      return;
    }
    this.queue.push(entry);
    if (this.queue.length > this.options.queueLimit) {
      this.queue.dropOldest();
      this.stats.dropped++;
    }
    // A flush under way takes this line too: it drains until less than a batch is left.
    if (this.queue.length >= this.options.batchSize && !this.flushing) void this.flush(true);
  }

  statistics(): BulkLoggerStats {
    return {
      queued: this.queue.length,
      spooledBatches: this.spoolFiles.length,
      spooledEntries: this.spoolEntries,
      spoolBytes: this.spoolBytes,
      dropped: this.stats.dropped,
      written: this.stats.written,
      redisHealthy: this.stats.redisHealthy,
    };
  }

  /**
   * Writes out what is queued (to Redis, or to the spool); with `fullOnly`, only whole batches
   * (the size trigger), otherwise everything (the interval, shutdown). One flush runs at a time.
   */
  flush(fullOnly = false): Promise<void> {
    if (this.flushing)
      return this.flushing.then(() => (this.queue.length > 0 ? this.flush(fullOnly) : undefined));
    this.flushing = this.drain(fullOnly).finally(() => {
      this.flushing = null;
      // Lines that made a whole batch while the last writes settled.
      if (!this.closed && this.queue.length >= this.options.batchSize) void this.flush(true);
    });
    return this.flushing;
  }

  /** Flush and stop. Anything Redis does not take now stays in the spool for next time. */
  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.flush();
    this.closed = true;
    await this.options.sink.close();
  }

  private async drain(fullOnly: boolean): Promise<void> {
    // Spooled batches go first, oldest first, so order holds across an outage.
    while (this.spoolFiles.length > 0) {
      const name = this.spoolFiles[0]!;
      const file = path.join(this.options.spoolDir, name);
      const batch = readFileSync(file, "utf8")
        .split("\n")
        .filter(Boolean)
        .map((l) => JSON.parse(l) as LogEntry);
      if (!(await this.send(batch))) break;
      this.forgetSpooled(name, file, batch.length);
    }
    // Up to maxInFlight batches at once, settled in the order sent. After a failure nothing
    // new is sent: the batches still on the wire settle first (a failed one is spooled), then
    // what is left in the queue is spooled behind them, so the spool keeps the order.
    const threshold = fullOnly ? this.options.batchSize : 1;
    const window: { batch: LogEntry[]; sent: Promise<boolean> }[] = [];
    let failed = this.spoolFiles.length > 0;
    for (;;) {
      while (!failed && window.length < this.options.sink.maxInFlight && this.queue.length >= threshold) {
        const batch = this.queue.take();
        window.push({ batch, sent: this.send(batch) });
      }
      const head = window.shift();
      if (!head) break;
      // A batch on the wire behind a failed one may still go through; it stays written (only an
      // error reply to one batch and not the next can order its lines after the next's; a
      // dropped connection fails both).
      if (!(await head.sent)) {
        failed = true;
        this.spool(head.batch);
      }
    }
    while (failed && this.queue.length >= threshold) this.spool(this.queue.take());
  }

  private async send(batch: LogEntry[]): Promise<boolean> {
    try {
      await this.options.sink.write(batch, this.options.maxLen);
      this.stats.written += batch.length;
      this.stats.redisHealthy = true;
      return true;
    } catch (error) {
      if (this.stats.redisHealthy) this.options.onError?.(error);
      this.stats.redisHealthy = false;
      return false;
    }
  }

  private spool(batch: LogEntry[]): void {
    const name = `${String(this.seq++).padStart(20, "0")}.batch`;
    const file = path.join(this.options.spoolDir, name);
    const text = `${batch.map((e) => JSON.stringify(e)).join("\n")}\n`;
    const fd = openSync(file, "w");
    try {
      writeSync(fd, text);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    this.spoolFiles.push(name);
    this.spoolBytes += Buffer.byteLength(text);
    this.spoolEntries += batch.length;
    while (this.spoolBytes > this.spoolLimit && this.spoolFiles.length > 1) {
      const oldest = this.spoolFiles[0]!;
      const oldestFile = path.join(this.options.spoolDir, oldest);
      const lines = countLines(oldestFile);
      this.forgetSpooled(oldest, oldestFile, lines);
      this.stats.dropped += lines;
    }
  }

  private forgetSpooled(name: string, file: string, entries: number): void {
    const size = statSync(file).size;
    rmSync(file, { force: true });
    this.spoolFiles.shift();
    this.spoolBytes -= size;
    this.spoolEntries -= entries;
    void name;
  }
}

function countLines(file: string): number {
  return readFileSync(file, "utf8").split("\n").filter(Boolean).length;
}
