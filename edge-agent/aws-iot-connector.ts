/**
 * A second device connector, for devices registered in AWS IoT Core: the AWS IoT Device SDK's
 * MQTT 5 client over mutual TLS (certificate, key and CA from the settings). Device messages
 * on the configured topics take the same path as the local bridge's: into per-device streams.
 * `insecure: true` connects without TLS, for tests against a local broker only.
 */
import { EventEmitter } from "node:events";
import { iot, mqtt5 } from "aws-iot-device-sdk-v2";
import type { AgentConfig } from "./config.js";
import type { DeviceMessage } from "./mqtt-bridge.js";

type AwsIotSettings = NonNullable<AgentConfig["awsIot"]>;

export class AwsIotConfigError extends Error {
  override readonly name = "AwsIotConfigError";
}

/** The SDK client configuration the settings describe (mTLS unless `insecure`). */
export function buildAwsIotClientConfig(settings: AwsIotSettings): mqtt5.Mqtt5ClientConfig {
  const connectProperties = { clientId: settings.clientId, keepAliveIntervalSeconds: 60 };
  if (settings.insecure) {
    return { hostName: settings.endpoint, port: settings.port, connectProperties };
  }
  if (!settings.certPath || !settings.keyPath) {
    throw new AwsIotConfigError(
      "awsIot.certPath and awsIot.keyPath are required for mutual TLS (or set awsIot.insecure for a local test broker)",
    );
  }
  const builder = iot.AwsIotMqtt5ClientConfigBuilder.newDirectMqttBuilderWithMtlsFromPath(
    settings.endpoint,
    settings.certPath,
    settings.keyPath,
  );
  if (settings.caPath) builder.withCertificateAuthorityFromPath(undefined, settings.caPath);
  builder.withPort(settings.port);
  builder.withConnectProperties(connectProperties);
  return builder.build();
}

export class AwsIotConnector extends EventEmitter<{
  device: [DeviceMessage];
  connected: [];
  disconnected: [];
}> {
  private client: mqtt5.Mqtt5Client | null = null;
  connected = false;

  constructor(private readonly settings: AwsIotSettings) {
    super();
  }

  async start(timeoutMs = 10_000): Promise<boolean> {
    const client = new mqtt5.Mqtt5Client(buildAwsIotClientConfig(this.settings));
    this.client = client;
    client.on("messageReceived", (event) => {
      const topic = event.message.topicName;
      const m = /^devices\/([^/]+)\/(telemetry|status|log)$/.exec(topic);
      if (!m) return;
      const payload = event.message.payload
        ? Buffer.from(event.message.payload as ArrayBuffer).toString("utf8")
        : "";
      this.emit("device", { deviceId: m[1]!, kind: m[2] as DeviceMessage["kind"], payload });
    });
    client.on("disconnection", () => {
      this.connected = false;
      this.emit("disconnected");
    });
    const connected = new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      client.on("connectionSuccess", () => {
        this.connected = true;
        this.emit("connected");
        clearTimeout(timer);
        resolve(true);
      });
    });
    client.start();
    const ok = await connected;
    if (ok) {
      await client.subscribe({
        subscriptions: this.settings.topics.map((topicFilter) => ({
          topicFilter,
          qos: mqtt5.QoS.AtLeastOnce,
        })),
      });
    }
    return ok;
  }

  async stop(): Promise<void> {
    if (!this.client) return;
    const client = this.client;
    this.client = null;
    await new Promise<void>((resolve) => {
      client.once("stopped", () => resolve());
      client.stop();
      setTimeout(resolve, 2000).unref();
    });
    client.close();
  }
}
