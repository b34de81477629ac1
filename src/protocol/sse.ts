/**
 * Server-Sent Events frames. Fields never carry CR or LF (a newline would end the field
 * and let data forge an event), so data is JSON on one line and names are checked.
 */
export interface SseFrame {
  id?: string | number;
  event?: string;
  data?: unknown;
  /** Reconnection delay hint in milliseconds. */
  retry?: number;
}

const SAFE_FIELD = /^[^\r\n]*$/;

export function formatSse(frame: SseFrame): string {
  let out = "";
  if (frame.retry !== undefined) out += `retry: ${Math.max(0, Math.floor(frame.retry))}\n`;
  if (frame.id !== undefined) out += `id: ${checkField("id", String(frame.id))}\n`;
  if (frame.event !== undefined) out += `event: ${checkField("event", frame.event)}\n`;
  if (frame.data !== undefined) out += `data: ${JSON.stringify(frame.data)}\n`;
  return `${out}\n`;
}

/** A comment line keeps a connection busy without being an event. */
export function formatSseComment(text: string): string {
  return `: ${checkField("comment", text)}\n\n`;
}

function checkField(name: string, value: string): string {
  if (!SAFE_FIELD.test(value)) throw new Error(`SSE ${name} must not contain CR or LF`);
  return value;
}

export interface ParsedSseEvent {
  id: string | undefined;
  event: string;
  data: string;
  retry: number | undefined;
}

/**
 * Incremental parser for an SSE byte stream (the agent's side), per the WHATWG rules:
 * events end at a blank line; `id` persists as the last event id; unknown fields are ignored.
 */
export class SseParser {
  private buffer = "";
  private data: string[] = [];
  private event = "";
  private id: string | undefined;
  private retry: number | undefined;
  lastEventId: string | undefined;

  push(chunk: string): ParsedSseEvent[] {
    this.buffer += chunk;
    const events: ParsedSseEvent[] = [];
    for (;;) {
      const match = /\r\n|\r|\n/.exec(this.buffer);
      if (!match) break;
      const line = this.buffer.slice(0, match.index);
      this.buffer = this.buffer.slice(match.index + match[0].length);
      if (line === "") {
        if (this.data.length > 0 || this.event) {
          if (this.id !== undefined) this.lastEventId = this.id;
          events.push({
            id: this.id,
            event: this.event || "message",
            data: this.data.join("\n"),
            retry: this.retry,
          });
        }
        this.data = [];
        this.event = "";
        this.id = undefined;
        this.retry = undefined;
        continue;
      }
      if (line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon === -1 ? line : line.slice(0, colon);
      let value = colon === -1 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "data") this.data.push(value);
      else if (field === "event") this.event = value;
      else if (field === "id" && !value.includes("\0")) this.id = value;
      else if (field === "retry" && /^\d+$/.test(value)) this.retry = Number(value);
    }
    return events;
  }
}
