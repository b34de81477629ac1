import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { type Journal, MemoryJournal, SqliteJournal } from "./journal.js";

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function tempFile(): string {
  const dir = mkdtempSync(path.join(tmpdir(), "fleetdeck-journal-"));
  dirs.push(dir);
  return path.join(dir, "journal.db");
}

/** One contract, every implementation. */
const implementations: [string, () => Journal][] = [
  ["in-memory", () => new MemoryJournal()],
  ["on-disk (SQLite)", () => new SqliteJournal(tempFile())],
];

describe.each(implementations)("journal contract: %s", (_name, make) => {
  it("accepts a command id once: a redelivery is refused", () => {
    const j = make();
    expect(j.receive("cmd_1", "exec", 1)).toBe(true);
    expect(j.receive("cmd_1", "exec", 2)).toBe(false);
    expect(j.get("cmd_1")).toMatchObject({ state: "received", receivedAt: 1 });
    j.close();
  });

  it("tracks received -> started -> finished, and what the edge has not taken", () => {
    const j = make();
    j.receive("a", "exec", 1);
    j.receive("b", "exec", 2);
    j.start("a", 3);
    j.start("b", 4);
    j.finish("b", { success: true, data: { x: 1 }, durationMs: 5 }, 6);
    j.finish("a", { success: false, error: { code: "E", message: "m" }, durationMs: 5 }, 7);
    expect(j.undelivered().map((e) => e.commandId)).toEqual(["b", "a"]);
    expect(j.get("b")!.result).toEqual({ success: true, data: { x: 1 }, durationMs: 5 });
    j.markDelivered("b");
    expect(j.undelivered().map((e) => e.commandId)).toEqual(["a"]);
    j.close();
  });

  it("names the commands that were running when the agent died", () => {
    const j = make();
    j.receive("a", "exec", 1);
    j.receive("b", "exec", 1);
    j.start("a", 2);
    expect(j.interrupted().map((e) => e.commandId)).toEqual(["a"]);
    j.close();
  });

  it("keeps the last event id", () => {
    const j = make();
    expect(j.lastEventId()).toBeUndefined();
    j.setLastEventId("7");
    j.setLastEventId("9");
    expect(j.lastEventId()).toBe("9");
    j.close();
  });

  it("compacts only delivered, old entries", () => {
    const j = make();
    for (const [id, at] of [
      ["old", 10],
      ["new", 100],
    ] as const) {
      j.receive(id, "exec", at);
      j.start(id, at);
      j.finish(id, { success: true, durationMs: 1 }, at);
      j.markDelivered(id);
    }
    j.receive("pending", "exec", 5);
    j.start("pending", 5);
    j.finish("pending", { success: true, durationMs: 1 }, 5);
    expect(j.compact(50)).toBe(1);
    expect(j.get("old")).toBeUndefined();
    expect(j.get("pending")).toBeDefined();
    expect(j.get("new")).toBeDefined();
    j.close();
  });

  it("refuses to move a command it never received", () => {
    const j = make();
    expect(() => j.start("ghost", 1)).toThrow(/no command ghost/);
    j.close();
  });
});

describe("on-disk journal durability", () => {
  it("survives reopening: what was written is there, and redeliveries are still refused", () => {
    const file = tempFile();
    const first = new SqliteJournal(file);
    first.receive("cmd_9", "exec", 1);
    first.start("cmd_9", 2);
    first.setLastEventId("42");
    first.close();
    const again = new SqliteJournal(file);
    expect(again.receive("cmd_9", "exec", 3)).toBe(false);
    expect(again.interrupted().map((e) => e.commandId)).toEqual(["cmd_9"]);
    expect(again.lastEventId()).toBe("42");
    again.close();
  });
});
