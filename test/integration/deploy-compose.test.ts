import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { describe, it } from "node:test";
import { parse } from "yaml";
import { Metrics } from "../../src/observability/metrics";

const ROOT = resolve(__dirname, "../../..");
const DEPLOY = resolve(ROOT, "deploy");
const read = (path: string) => readFileSync(resolve(DEPLOY, path), "utf8");

interface Service {
  image?: string;
  environment?: Record<string, string>;
  depends_on?: Record<string, { condition: string }> | string[];
  command?: string[];
}
const compose = parse(read("compose.yaml"), { merge: true }) as { services: Record<string, Service> };
const gateways = Object.entries(compose.services).filter(([name]) => name.startsWith("gateway-"));

/** Placeholder secrets: `docker compose config` refuses to render without them. */
const SECRETS = { JWT_SECRET: "x".repeat(32), GATEWAY_MQTT_PASSWORD: "g", ALERTS_MQTT_PASSWORD: "a", EXPORTER_MQTT_PASSWORD: "e" };

describe("deploy/: the production shape", () => {
  it("three gateway replicas in one shared group with distinct REPLICA_IDs, on the replica set and the broker", () => {
    assert.equal(gateways.length, 3);
    const env = gateways.map(([, service]) => service.environment!);
    assert.equal(new Set(env.map((e) => e.REPLICA_ID)).size, 3, "distinct REPLICA_IDs");
    assert.equal(new Set(env.map((e) => e.MQTT_SHARED_GROUP)).size, 1, "one shared group");
    assert.ok(env[0]!.MQTT_SHARED_GROUP);
    for (const e of env) {
      assert.match(e.MONGODB_URI!, /^mongodb:\/\/mongo1:27017,mongo2:27017,mongo3:27017\/\?replicaSet=rs0&w=majority/);
      assert.equal(e.MQTT_URL, "mqtt://mosquitto:1883");
      assert.equal(e.OTEL_EXPORTER_OTLP_ENDPOINT, "http://otel-collector:4318");
    }
    for (const [, service] of gateways) {
      assert.deepEqual((service.depends_on as Record<string, { condition: string }>)["mongo-init"], { condition: "service_completed_successfully" });
    }
  });

  it("a three-member replica set initiated by a job", () => {
    for (const member of ["mongo1", "mongo2", "mongo3"]) assert.deepEqual(compose.services[member]!.command, ["mongod", "--replSet", "rs0", "--bind_ip_all"]);
    const init = read("mongo/init-replica-set.js");
    for (const host of ["mongo1:27017", "mongo2:27017", "mongo3:27017"]) assert.ok(init.includes(`host: "${host}"`), host);
  });

  it("Mosquitto applies the README's ACL, with users for the gateway, alert consumers and the exporter", () => {
    const readme = readFileSync(resolve(ROOT, "README.md"), "utf8");
    const block = /```\n(# the gateway\n[\s\S]*?)```/.exec(readme)?.[1];
    assert.ok(block, "the README shows the ACL");
    const acl = read("mosquitto/acl");
    const lines = (text: string) => text.split("\n").filter((line) => line && !line.startsWith("#"));
    for (const line of lines(block)) assert.ok(lines(acl).includes(line), `the ACL has: ${line}`);
    assert.match(acl, /^user alerts\ntopic read iot\/alerts$/m);
    assert.match(read("mosquitto/mosquitto.conf"), /^acl_file \/mosquitto\/config\/acl$/m);
  });

  it("Prometheus scrapes every replica's /metrics, and its rules name metrics the gateway has", async () => {
    const prometheus = parse(read("prometheus/prometheus.yml")) as { scrape_configs: Array<{ job_name: string; metrics_path?: string; static_configs: Array<{ targets: string[] }> }> };
    const job = prometheus.scrape_configs.find((c) => c.job_name === "gateway")!;
    assert.equal(job.metrics_path, "/metrics");
    assert.deepEqual(job.static_configs[0]!.targets, gateways.map(([name]) => `${name}:4000`));
    const known = new Set((await new Metrics().registry.getMetricsAsJSON()).map((m) => m.name));
    const used = [...read("prometheus/alerts.yml").matchAll(/\b(gateway_[a-z_]+)/g)].map((m) => m[1]!);
    assert.ok(used.length > 3);
    for (const name of used) assert.ok(known.has(name), `${name} is a gateway metric`);
  });

  it("`docker compose config` (or docker-compose 1.29's) accepts the file, and refuses a broken one", (t) => {
    const cli = composeCli();
    if (typeof cli === "string") {
      t.skip(`neither docker compose nor docker-compose is available here (${cli}); the checks above ran without it`);
      return;
    }
    const config = (file: string) => spawnSync(cli.command, [...cli.args, "-f", file, "config", "--quiet"], { encoding: "utf8", env: { ...process.env, ...SECRETS } });
    const result = config(resolve(DEPLOY, "compose.yaml"));
    assert.equal(result.status, 0, `${cli.command} ${cli.args.join(" ")}: ${result.stderr}`);
    // The same check on a file with an error: the check can fail.
    const dir = mkdtempSync(join(tmpdir(), "compose-"));
    try {
      const broken = join(dir, "compose.yaml");
      writeFileSync(broken, read("compose.yaml").replace('ports: ["4318:4318"]', 'ports: ["4318:4318"]\n    depends_on: [no-such-service]'));
      assert.notEqual(config(broken).status, 0, "a compose file naming a missing service is refused");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** The Compose v2 plugin when the docker client has it, else Debian's docker-compose 1.29; a string says why neither. */
function composeCli(): { command: string; args: string[] } | string {
  const plugin = spawnSync("docker", ["compose", "version"], { encoding: "utf8" });
  if (plugin.status === 0) return { command: "docker", args: ["compose"] };
  const standalone = spawnSync("docker-compose", ["version"], { encoding: "utf8" });
  if (standalone.status === 0) return { command: "docker-compose", args: [] };
  return (standalone.error?.message ?? standalone.stderr ?? plugin.stderr).trim().split("\n")[0] ?? "not found";
}
