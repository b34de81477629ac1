/**
 * The local MQTT broker for `npm start` when MQTT_URL is not set: aedes in-process.
 * It speaks MQTT 3.1.1 only; sites and tests that need MQTT 5 point MQTT_URL at Mosquitto.
 */
import net from "node:net";
import { Aedes } from "aedes";
import { closeServer, listen } from "./ports.js";

export interface EmbeddedBroker {
  url: string;
  port: number;
  stop(): Promise<void>;
}

export async function startEmbeddedBroker(options: { port: number }): Promise<EmbeddedBroker> {
  const broker = await Aedes.createBroker();
  const server = net.createServer(broker.handle);
  const port = await listen(server, options.port, "the embedded MQTT broker", "FLEETDECK_MQTT_PORT");
  return {
    url: `mqtt://127.0.0.1:${port}`,
    port,
    stop: async function stopEmbeddedBroker() {
      await closeServer(server);
      await new Promise<void>((resolve) => broker.close(() => resolve()));
    },
  };
}
