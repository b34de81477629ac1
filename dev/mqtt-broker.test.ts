import mqtt from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type EmbeddedBroker, startEmbeddedBroker } from "./mqtt-broker.js";

let broker: EmbeddedBroker;

beforeAll(async () => {
  broker = await startEmbeddedBroker({ port: 0 });
});

afterAll(async () => {
  await broker.stop();
});

describe("embedded MQTT broker", () => {
  it("carries QoS 1 messages between mqtt.js clients", async () => {
    const sub = await mqtt.connectAsync(broker.url, { clientId: "sub-test", protocolVersion: 4 });
    const pub = await mqtt.connectAsync(broker.url, { clientId: "pub-test", protocolVersion: 4 });
    try {
      await sub.subscribeAsync("devices/+/telemetry", { qos: 1 });
      const received = new Promise<{ topic: string; payload: string }>((resolve) =>
        sub.on("message", (topic, payload) => resolve({ topic, payload: payload.toString() })),
      );
      await pub.publishAsync("devices/d1/telemetry", JSON.stringify({ t: 21.5 }), { qos: 1 });
      expect(await received).toEqual({ topic: "devices/d1/telemetry", payload: '{"t":21.5}' });
    } finally {
      await sub.endAsync();
      await pub.endAsync();
    }
  });
});
