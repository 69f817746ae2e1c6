import { startGateway } from "../src/app";
import { loadConfig } from "../src/config";
import { createLogger } from "../src/logger";
import { memoryAfterGc, serveParent, type ReadyMessage } from "./ipc";
import { countStoreOps } from "./store-ops";

/**
 * The gateway under test, in its own process as `npm start` runs it (forked by bench/run.ts with
 * --expose-gc): its CPU, RSS and heap are its own, not shared with the load generator and devices.
 * Its store client has command monitoring on (bench/run.ts adds `monitorCommands=true` to MONGODB_URI),
 * so every store command it issues is counted.
 */
async function main(): Promise<void> {
  const gateway = await startGateway(loadConfig(process.env), createLogger(process.env.LOG_LEVEL ?? "warn"));
  const storeOps = countStoreOps(gateway.storeClient);
  serveParent(
    async (request) => {
      if (request.kind === "memory") return memoryAfterGc();
      if (request.kind === "storeOps") return storeOps();
      throw new Error(`unknown request ${request.kind}`);
    },
    () => gateway.stop(),
  );
  const ready: ReadyMessage = { kind: "ready", port: gateway.port, mqttUrl: gateway.mqttUrl };
  process.send!(ready);
}

main().catch((error: Error) => {
  console.error(`bench gateway failed: ${error.message}`);
  process.exit(1);
});
