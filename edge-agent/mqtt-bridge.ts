/**
 * The MQTT bridge: the devices around the host and local tools talk to the agent here.
 * mqtt.js, MQTT 5 (3.1.1 when the broker speaks nothing newer), a persistent session
 * (clean start off, session expiry set) and QoS 1; redelivered duplicates are dropped.
 *
 *   in   manager/command                 run like an edge command; result on manager/command/result
 *   in   manager/health                  answered on manager/health/report (also every HEALTH_CHECK_INTERVAL_SECS)
 *   in   devices/+/telemetry|status|log  into per-device Redis streams; status and last will become presence
 *   out  devices/<id>/command            device-command requests; replies matched by correlation id
 *   out  manager/process/<name>          a watched process started, stopped or restarted
 */
import { EventEmitter } from "node:events";
import type { IClientOptions, IPublishPacket, MqttClient } from "mqtt";
import * as v from "valibot";
import { nodeCrypto } from "./builtins.js";
import { CommandError, type DeviceRequester } from "./executors/types.js";
import { int, problemsOf, text, ValidationError } from "./validate.js";

export const TOPICS = {
  command: "manager/command",
  commandResult: "manager/command/result",
  health: "manager/health",
  healthReport: "manager/health/report",
  devices: ["devices/+/telemetry", "devices/+/status", "devices/+/log"],
  process: (name: string) => `manager/process/${name}`,
  deviceCommand: (deviceId: string) => `devices/${deviceId}/command`,
} as const;

export const MqttCommandSchema = v.strictObject({
  id: text(128),
  action: text(64),
  payload: v.optional(v.record(v.string(), v.unknown()), {}),
  timeoutSec: v.optional(int(1, 86_400), 60),
});
export type MqttCommand = v.InferOutput<typeof MqttCommandSchema>;

export interface DeviceMessage {
  deviceId: string;
  kind: "telemetry" | "status" | "log";
  payload: string;
}

export interface MqttBridgeOptions {
  url: string;
  clientId: string;
  /** Where replies to device-command requests come back. */
  replyTopic: string;
  protocolVersion?: 4 | 5;
  sessionExpirySec?: number;
  log?: (level: "info" | "warn" | "error", msg: string, fields?: Record<string, unknown>) => void;
}

type Events = {
  command: [MqttCommand];
  badCommand: [string];
  healthRequest: [];
  device: [DeviceMessage];
  connected: [];
  disconnected: [];
};

export class MqttBridge extends EventEmitter<Events> implements DeviceRequester {
  private client: MqttClient | null = null;
  private readonly seen = new Map<string, number>();
  private readonly pending = new Map<string, (reply: unknown) => void>();
  duplicatesDropped = 0;
  reconnects = 0;

  constructor(private readonly options: MqttBridgeOptions) {
    super();
  }

  get connected(): boolean {
    return this.client?.connected ?? false;
  }

  /**
   * Connects and resolves true once connected, or false after `timeoutMs` without a
   * connection; mqtt.js keeps reconnecting in the background either way.
   */
  async start(timeoutMs = 3000): Promise<boolean> {
    const version = this.options.protocolVersion ?? 5;
    const opts: IClientOptions = {
      clientId: this.options.clientId,
      protocolVersion: version,
      clean: false,
      reconnectPeriod: 1000,
      connectTimeout: 10_000,
      ...(version === 5
        ? { properties: { sessionExpiryInterval: this.options.sessionExpirySec ?? 3600 } }
        : {}),
    };
    // Loaded on first use: an agent without MQTT does not pay for mqtt.js in memory.
    const { default: mqtt } = await import("mqtt");
    const client = mqtt.connect(this.options.url, opts);
    this.client = client;
    client.on("connect", () => {
      this.emit("connected");
      // A resumed session keeps its subscriptions; subscribing again is harmless.
      client.subscribe([TOPICS.command, TOPICS.health, ...TOPICS.devices, this.options.replyTopic], {
        qos: 1,
      });
    });
    client.on("reconnect", () => {
      this.reconnects++;
    });
    client.on("close", () => this.emit("disconnected"));
    client.on("error", (error) => {
      // A broker without MQTT 5 refuses the first try; the agent then uses 3.1.1, so it is no warning.
      const protocolRefused = /unacceptable protocol version/i.test(error.message);
      this.options.log?.(protocolRefused ? "info" : "warn", "mqtt error", { error: error.message });
    });
    client.on("message", (topic, payload, packet) => this.onMessage(topic, payload, packet));
    if (client.connected) return true;
    return new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      client.once("connect", () => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }

  async stop(): Promise<void> {
    for (const resolve of this.pending.values()) resolve(undefined);
    await this.client?.endAsync();
  }

  async publish(topic: string, body: unknown, options: { retain?: boolean } = {}): Promise<void> {
    if (!this.client) throw new Error("MQTT bridge is not started");
    await this.client.publishAsync(topic, JSON.stringify(body), { qos: 1, retain: options.retain ?? false });
  }

  /** device-command: publish a request and wait for the reply with the same correlation id. */
  async request(deviceId: string, body: unknown, timeoutMs: number, signal: AbortSignal): Promise<unknown> {
    if (!this.client?.connected)
      throw new CommandError("MQTT_UNAVAILABLE", "not connected to the MQTT broker", undefined, true);
    const correlationId = nodeCrypto().randomUUID();
    const reply = new Promise<unknown>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(correlationId);
        reject(new CommandError("DEVICE_TIMEOUT", `device ${deviceId} did not reply within ${timeoutMs} ms`));
      }, timeoutMs);
      signal.addEventListener(
        "abort",
        () => {
          clearTimeout(timer);
          this.pending.delete(correlationId);
          reject(new CommandError("CANCELED", "the command was canceled"));
        },
        { once: true },
      );
      this.pending.set(correlationId, (value) => {
        clearTimeout(timer);
        this.pending.delete(correlationId);
        resolve(value);
      });
    });
    // MQTT 5 carries the correlation in properties; the body carries it too for 3.1.1 devices.
    await this.client.publishAsync(
      TOPICS.deviceCommand(deviceId),
      JSON.stringify({ correlationId, replyTo: this.options.replyTopic, command: body }),
      {
        qos: 1,
        ...(this.options.protocolVersion !== 4
          ? {
              properties: {
                responseTopic: this.options.replyTopic,
                correlationData: Buffer.from(correlationId),
              },
            }
          : {}),
      },
    );
    return reply;
  }

  private onMessage(topic: string, payload: Buffer, packet: IPublishPacket): void {
    if (this.isDuplicate(topic, payload, packet)) return;
    if (topic === this.options.replyTopic) {
      const fromProps = packet.properties?.correlationData?.toString();
      let body: { correlationId?: string } & Record<string, unknown> = {};
      try {
        body = JSON.parse(payload.toString()) as typeof body;
      } catch {}
      const id = fromProps ?? body.correlationId;
      if (id) this.pending.get(id)?.(body);
      return;
    }
    if (topic === TOPICS.command) {
      let parsed: v.SafeParseResult<typeof MqttCommandSchema>;
      try {
        parsed = v.safeParse(MqttCommandSchema, JSON.parse(payload.toString()));
      } catch {
        this.emit("badCommand", "payload is not JSON");
        return;
      }
      if (parsed.success) this.emit("command", parsed.output);
      else this.emit("badCommand", new ValidationError(problemsOf(parsed.issues)).message);
      return;
    }
    if (topic === TOPICS.health) {
      this.emit("healthRequest");
      return;
    }
    const m = /^devices\/([^/]+)\/(telemetry|status|log)$/.exec(topic);
    if (m)
      this.emit("device", {
        deviceId: m[1]!,
        kind: m[2] as DeviceMessage["kind"],
        payload: payload.toString(),
      });
  }

  /**
   * QoS 1 may deliver a message again (after a reconnect, with the same packet id). A message
   * whose packet id and content were seen in the last minute is dropped.
   */
  private isDuplicate(topic: string, payload: Buffer, packet: IPublishPacket): boolean {
    if (packet.qos === 0 || packet.messageId === undefined) return false;
    const key = `${packet.messageId}:${nodeCrypto().createHash("sha1").update(topic).update(payload).digest("base64")}`;
    const now = Date.now();
    const seenAt = this.seen.get(key);
    this.seen.set(key, now);
    if (this.seen.size > 10_000) {
      for (const [k, at] of this.seen) {
        if (now - at > 60_000 || this.seen.size > 10_000) this.seen.delete(k);
        else break;
      }
    }
    if (seenAt !== undefined && now - seenAt < 60_000) {
      this.duplicatesDropped++;
      return true;
    }
    return false;
  }
}
