import { signToken } from "../../src/auth/jwt";
import { findFreePort } from "../../src/embedded/free-port";
import { TEST_JWT_SECRET } from "./gateway";
import { GraphQLTestClient } from "./graphql-client";
import { MOSQUITTO_URL, testStoreUri, uniqueName } from "./store";

export interface ProcessGatewaySetup {
  database: string;
  prefix: string;
  replicaId: string;
  tenant: string;
  port: number;
  /** For `startGatewayProcess`: the test store, Mosquitto, a stable REPLICA_ID (restarts keep the broker session). */
  env: Record<string, string>;
  /** An admin of `tenant`, talking to whichever process serves `port`. */
  admin: GraphQLTestClient;
}

/** A fresh database, topic prefix, replica id, tenant and port for a gateway run (and restarted) as a process. */
export async function processGatewaySetup(extraEnv: Record<string, string> = {}): Promise<ProcessGatewaySetup> {
  const database = uniqueName("fault_");
  const prefix = uniqueName("f");
  const replicaId = uniqueName("r");
  const tenant = uniqueName("tenant-");
  const port = await findFreePort();
  const env = {
    MONGODB_URI: await testStoreUri(),
    MONGODB_DB: database,
    MQTT_URL: MOSQUITTO_URL,
    MQTT_TOPIC_PREFIX: prefix,
    JWT_SECRET: TEST_JWT_SECRET,
    REPLICA_ID: replicaId,
    DEMO: "0",
    // The same port across a restart: the admin client and the test talk to whichever process serves it.
    PORT: String(port),
    ...extraEnv,
  };
  const admin = new GraphQLTestClient(`http://127.0.0.1:${port}`, {
    token: await signToken(TEST_JWT_SECRET, { sub: "admin-user", tenant, roles: ["admin"] }),
  });
  return { database, prefix, replicaId, tenant, port, env, admin };
}
