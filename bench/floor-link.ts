import { randomUUID } from "node:crypto";
import mqtt, { type MqttClient } from "mqtt";
import type { Topics } from "../src/mqtt/topics";
import { Completions, type Side } from "./closed-loop";
import { sendTopic, transitionTopic, type ReferenceMode, type SendRequest, type TransitionNotice } from "./floor-protocol";

/** The bench's connection to the floor process's broker: send requests out, transitions in. */
export class FloorLink {
  readonly completions = new Completions();

  private constructor(
    private readonly connection: MqttClient,
    private readonly topics: Topics,
  ) {
    connection.on("message", (_topic, payload) => {
      const notice = JSON.parse(payload.toString("utf8")) as TransitionNotice;
      if (notice.detail) console.error(`bench: the floor failed ${notice.id}: ${notice.detail}`);
      this.completions.transition(notice.id, notice.status);
    });
  }

  static async open(url: string, credentials: { username?: string; password?: string }, topics: Topics): Promise<FloorLink> {
    const connection = await mqtt.connectAsync(url, { clientId: `bench-floor-link-${process.pid}`, ...credentials, protocolVersion: 4, clean: true });
    await connection.subscribeAsync(transitionTopic(topics), { qos: 1 });
    return new FloorLink(connection, topics);
  }

  /** The floor (`findOneAndUpdate` guarded by status) or the limit (point writes by `_id`) as a closed-loop side. */
  side(mode: ReferenceMode): Side {
    return {
      name: mode,
      completions: this.completions,
      send: async (deviceId) => {
        const request: SendRequest = { id: randomUUID(), deviceId, mode };
        await this.connection.publishAsync(sendTopic(this.topics), JSON.stringify(request), { qos: 1 });
        return request.id;
      },
    };
  }

  async close(): Promise<void> {
    await this.connection.endAsync();
  }
}
