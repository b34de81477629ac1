import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import mqtt from "mqtt";
import { afterAll, describe, expect, it } from "vitest";
import { selfSignedCert } from "../test/support/certs.js";
import { AwsIotConfigError, AwsIotConnector, buildAwsIotClientConfig } from "./aws-iot-connector.js";
import type { DeviceMessage } from "./mqtt-bridge.js";

const MQTT_URL = process.env.MQTT_URL ?? "mqtt://127.0.0.1:1883";
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe("AWS IoT connector (aws-iot-device-sdk-v2, MQTT 5)", () => {
  it("receives device messages from a broker through the SDK's MQTT 5 client (local Mosquitto, no TLS)", async () => {
    const { hostname, port } = new URL(MQTT_URL);
    const run = Math.random().toString(36).slice(2, 8);
    const connector = new AwsIotConnector({
      endpoint: hostname,
      port: Number(port),
      clientId: `aws-iot-test-${run}`,
      insecure: true,
      topics: [`devices/+/telemetry`],
    });
    const received: DeviceMessage[] = [];
    connector.on("device", (m) => received.push(m));
    try {
      expect(await connector.start()).toBe(true);
      const device = await mqtt.connectAsync(MQTT_URL, { protocolVersion: 5 });
      await device.publishAsync(`devices/iot-${run}/telemetry`, JSON.stringify({ v: 1 }), { qos: 1 });
      await expect.poll(() => received.length, { timeout: 5000 }).toBe(1);
      expect(received[0]).toEqual({ deviceId: `iot-${run}`, kind: "telemetry", payload: '{"v":1}' });
      await device.endAsync();
    } finally {
      await connector.stop();
    }
  });

  it("builds a mutual-TLS configuration from certificate, key and CA files", () => {
    const dir = mkdtempSync(path.join(tmpdir(), "fleetdeck-mtls-"));
    dirs.push(dir);
    const { cert, key } = selfSignedCert(dir, {
      commonName: "fleetdeck-test",
      certFile: "device.pem.crt",
      keyFile: "private.pem.key",
    });
    const config = buildAwsIotClientConfig({
      endpoint: "example-ats.iot.eu-west-1.amazonaws.com",
      port: 8883,
      clientId: "gw-1",
      certPath: cert,
      keyPath: key,
      caPath: cert,
      insecure: false,
      topics: [],
    });
    expect(config.hostName).toBe("example-ats.iot.eu-west-1.amazonaws.com");
    expect(config.port).toBe(8883);
    expect(config.tlsCtx).toBeDefined();
    expect(config.connectProperties?.clientId).toBe("gw-1");
  });

  it("refuses mutual TLS without a certificate and key, naming the settings", () => {
    expect(() =>
      buildAwsIotClientConfig({ endpoint: "x", port: 8883, clientId: "c", insecure: false, topics: [] }),
    ).toThrow(AwsIotConfigError);
    expect(() =>
      buildAwsIotClientConfig({ endpoint: "x", port: 8883, clientId: "c", insecure: false, topics: [] }),
    ).toThrow(/awsIot.certPath and awsIot.keyPath/);
  });
});
