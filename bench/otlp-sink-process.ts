import { OtlpReceiver } from "../test/kit/otlp-receiver";
import { serveParent, type ReadyMessage } from "./ipc";

/**
 * The tracing bench's OTLP/HTTP sink in a process of its own (forked by bench/tracing.ts), as a
 * collector would be: decoding a batch of spans takes milliseconds, and in the bench's process it
 * would hold up the client whose latencies are measured.
 */
async function main(): Promise<void> {
  const sink = await OtlpReceiver.start({ keep: false });
  serveParent(
    async (request) => {
      if (request.kind === "spans") return { spans: sink.spanCount, requests: sink.requests };
      throw new Error(`unknown request ${request.kind}`);
    },
    () => sink.close(),
  );
  const ready: ReadyMessage = { kind: "ready", mqttUrl: "", otlpEndpoint: sink.endpoint };
  process.send!(ready);
}

main().catch((error: Error) => {
  console.error(`bench OTLP sink failed: ${error.message}`);
  process.exit(1);
});
