import { startGateway } from "./app";
import { ConfigError, loadConfig } from "./config";
import { demoInstructions, startDemo } from "./demo/demo";
import { createLogger, withoutCredentials } from "./logger";
import { startTracing } from "./observability/tracing";

const SHUTDOWN_LIMIT_MS = 8_000;

/** `npm start`: configuration from the environment, the gateway, the demo when embedded; SIGTERM/SIGINT stop it cleanly. */
async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(`Configuration error: ${error.message}`);
      process.exit(2);
    }
    throw error;
  }
  const log = createLogger();
  const started = Date.now();
  // Before the gateway: what it starts runs in the SDK's context manager.
  const tracing = await startTracing();
  if (tracing.enabled) log.info({ endpoint: withoutCredentials(process.env.OTEL_EXPORTER_OTLP_ENDPOINT!) }, "tracing on (OTLP/HTTP)");
  const gateway = await startGateway(config, log);
  let stopDemo = async () => {};
  if (config.demo && !config.mongodbUri && gateway.generatedJwtSecret) {
    const demo = await startDemo(gateway, gateway.generatedJwtSecret, config.mqttTopicPrefix, log);
    stopDemo = demo.stop;
    process.stdout.write(demoInstructions(gateway.port, demo.tokens));
  } else if (gateway.generatedJwtSecret) {
    log.warn("no JWT_SECRET or JWT_JWKS_URL: a random secret was made and no tokens were printed (DEMO=0)");
  }
  log.info({ ms: Date.now() - started, port: gateway.port, mqtt: withoutCredentials(gateway.mqttUrl) }, "gateway ready");

  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, "stopping");
    // A store or broker that is gone can hold a stop step (the driver waits for a server); an orchestrator
    // kills after about 10 s, so give up before that and say so.
    const force = setTimeout(() => {
      log.error(`shutdown took longer than ${SHUTDOWN_LIMIT_MS / 1000} s; exiting`);
      process.exit(1);
    }, SHUTDOWN_LIMIT_MS);
    force.unref();
    await stopDemo();
    await gateway.stop();
    await tracing.shutdown().catch((error: Error) => log.warn({ err: error.message }, "spans not exported at shutdown"));
    log.info("stopped");
    process.exit(0);
  };
  process.on("SIGTERM", () => void shutdown("SIGTERM"));
  process.on("SIGINT", () => void shutdown("SIGINT"));
}

main().catch((error) => {
  console.error(`Gateway failed to start: ${(error as Error).message}`);
  process.exit(1);
});
