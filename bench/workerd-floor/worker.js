// The floor of Fleetdeck's dispatch path in workerd, for bench/dispatch: a Worker that forwards
// a publish to one Durable Object per target, which pushes it on that target's SSE stream. No
// authentication, validation or rate limit; with ?store=1 the object first inserts the message
// into its SQLite storage, so the push waits for the commit (output gate) as a command's does.
const encoder = new TextEncoder();

export class Target {
  constructor(ctx) {
    this.ctx = ctx;
    this.writer = null;
    this.seq = 0;
    ctx.storage.sql.exec("CREATE TABLE IF NOT EXISTS messages (seq INTEGER PRIMARY KEY, body TEXT NOT NULL)");
  }
  async fetch(request) {
    const url = new URL(request.url);
    if (url.pathname === "/sub") {
      const { readable, writable } = new TransformStream();
      this.writer = writable.getWriter();
      this.writer.write(encoder.encode("retry: 2000\n\n"));
      return new Response(readable, { headers: { "content-type": "text/event-stream" } });
    }
    const body = await request.text();
    const seq = ++this.seq;
    if (url.searchParams.get("store") === "1") {
      this.ctx.storage.sql.exec("INSERT INTO messages (seq, body) VALUES (?, ?)", seq, body);
    }
    this.writer?.write(encoder.encode(`id: ${seq}\nevent: command\ndata: ${body}\n\n`));
    return new Response("{}", { status: 201, headers: { "content-type": "application/json" } });
  }
}

export default {
  fetch(request, env) {
    const id = new URL(request.url).searchParams.get("id") ?? "";
    return env.TARGET.get(env.TARGET.idFromName(id)).fetch(request);
  },
};
