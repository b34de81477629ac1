/**
 * Keyset cursors for listings ordered by (time, id), newest first: opaque to callers, and a
 * malformed one is a 422 naming the `cursor` field.
 */
import { and, type Column, eq, lt, or, type SQL } from "drizzle-orm";
import { FleetdeckError } from "../src/protocol/errors.js";

export function encodeCursor(at: number, id: string): string {
  return btoa(`${at}:${id}`);
}

export function decodeCursor(cursor: string): [number, string] {
  let at: string | undefined;
  let id: string | undefined;
  try {
    [at, id] = atob(cursor).split(":");
  } catch {}
  if (!at || !id || !Number.isFinite(Number(at)))
    throw new FleetdeckError("VALIDATION_FAILED", "invalid cursor", {
      details: { issues: [{ path: ["cursor"], message: "invalid" }] },
    });
  return [Number(at), id];
}

/** Rows strictly after the cursor in (time DESC, id DESC) order. */
export function afterCursor(cursor: string, time: Column, idColumn: Column): SQL {
  const [at, id] = decodeCursor(cursor);
  const when = new Date(at);
  return or(lt(time, when), and(eq(time, when), lt(idColumn, id)))!;
}
