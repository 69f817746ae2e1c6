import { startGateway } from "../src/app";
import { systemClock } from "../src/clock";
import { loadConfig } from "../src/config";
import { createLogger } from "../src/logger";
import { startTracing } from "../src/observability/tracing";
import { memoryAfterGc, serveParent, type ReadyMessage } from "./ipc";
import { countCommandStoreOpsById, countStoreOps, countStoreOpsByCollection } from "./store-ops";

/**
 * The gateway under test, in its own process as `npm start` runs it (forked by bench/run.ts with
 * --expose-gc): its CPU, RSS and heap are its own, not shared with the load generator and devices.
 * It runs the embedded default (it starts and tunes its own FerretDB, as `npm start` does); its store
 * client has command monitoring on, so every store command it issues is counted.
 */
async function main(): Promise<void> {
  // As src/main.ts does: tracing on when OTEL_EXPORTER_OTLP_ENDPOINT is set (bench/tracing.ts).
  const tracing = await startTracing();
  const gateway = await startGateway(loadConfig(process.env), createLogger(process.env.LOG_LEVEL ?? "warn"), systemClock, { monitorStoreCommands: true });
  const storeOps = countStoreOps(gateway.storeClient);
  const storeOpsByCollection = countStoreOpsByCollection(gateway.storeClient);
  const commandStoreOps = countCommandStoreOpsById(gateway.storeClient);
  serveParent(
    async (request) => {
      if (request.kind === "memory") return memoryAfterGc();
      if (request.kind === "storeOps") return storeOps();
      if (request.kind === "storeOpsByCollection") return storeOpsByCollection();
      if (request.kind === "commandStoreOps") return commandStoreOps(request.ids, request.over);
      throw new Error(`unknown request ${request.kind}`);
    },
    async () => {
      await gateway.stop();
      await tracing.shutdown();
    },
  );
  const ready: ReadyMessage = { kind: "ready", port: gateway.port, mqttUrl: gateway.mqttUrl, mongodbUri: gateway.mongodbUri };
  process.send!(ready);
}

main().catch((error: Error) => {
  console.error(`bench gateway failed: ${error.message}`);
  process.exit(1);
});
