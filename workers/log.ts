/** Structured JSON logs with the ids that matter; workerd forwards console output to `wrangler tail`. */
export type LogFields = Record<string, unknown>;

export function log(level: "debug" | "info" | "warn" | "error", msg: string, fields: LogFields = {}): void {
  const line = JSON.stringify({ level, msg, at: new Date().toISOString(), ...fields });
  if (level === "error") console.error(line);
  else if (level === "warn") console.warn(line);
  else console.log(line);
}
