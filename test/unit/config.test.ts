import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ConfigError, loadConfig } from "../../src/config";

const GOOD_SECRET = "0123456789abcdef0123456789abcdef"; // 32 characters

/** Asserts loadConfig(env) throws a one-line ConfigError naming one of `variables`. */
function refuses(env: NodeJS.ProcessEnv, ...variables: string[]): void {
  assert.throws(
    () => loadConfig(env),
    (error: unknown) => {
      assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${String(error)}`);
      assert.ok(variables.includes(error.variable), `variable ${error.variable} is not one of ${variables.join(", ")}`);
      assert.ok(error.message.length > 0);
      assert.ok(!/[\r\n]/.test(error.message), `message is not one line: ${JSON.stringify(error.message)}`);
      assert.ok(error.message.includes(error.variable), `message does not name the variable: ${error.message}`);
      assert.ok(error.message.length > error.variable.length + 2, `message does not say what is wrong: ${error.message}`);
      return true;
    },
  );
}

describe("config: defaults (CONTRACT §1)", () => {
  const config = loadConfig({});

  it("PORT 4000", () => assert.equal(config.port, 4000));
  it("MONGODB_DB iot_gateway, MONGODB_URI unset (embedded store)", () => {
    assert.equal(config.mongodbDb, "iot_gateway");
    assert.equal(config.mongodbUri, undefined);
  });
  it("MQTT_TOPIC_PREFIX iot", () => assert.equal(config.mqttTopicPrefix, "iot"));
  it("MQTT_PORT 1883, MQTT_URL unset (embedded broker)", () => {
    assert.equal(config.mqttPort, 1883);
    assert.equal(config.mqttUrl, undefined);
  });
  it("DATA_DIR ./data", () => assert.equal(config.dataDir, "./data"));
  it("demo on", () => assert.equal(config.demo, true));
  it("no shared group, no JWT settings", () => {
    assert.equal(config.mqttSharedGroup, undefined);
    assert.equal(config.jwtSecret, undefined);
    assert.equal(config.jwtJwksUrl, undefined);
  });
  it("does not read process.env when an env is given", () => {
    const saved = process.env.PORT;
    process.env.PORT = "5555";
    try {
      assert.equal(loadConfig({}).port, 4000);
    } finally {
      if (saved === undefined) delete process.env.PORT;
      else process.env.PORT = saved;
    }
  });
});

describe("config: valid values are taken", () => {
  it("reads every documented variable", () => {
    const config = loadConfig({
      PORT: "8080",
      MONGODB_URI: "mongodb://db.example:27017",
      MONGODB_DB: "gw_test",
      DATA_DIR: "/var/lib/gw",
      MQTT_URL: "mqtts://broker.example:8883",
      MQTT_USERNAME: "gw",
      MQTT_PASSWORD: "pw",
      MQTT_PORT: "1884",
      MQTT_TOPIC_PREFIX: "a/b",
      MQTT_SHARED_GROUP: "gateways",
      JWT_SECRET: GOOD_SECRET,
      DEMO: "0",
    });
    assert.equal(config.port, 8080);
    assert.equal(config.mongodbUri, "mongodb://db.example:27017");
    assert.equal(config.mongodbDb, "gw_test");
    assert.equal(config.dataDir, "/var/lib/gw");
    assert.equal(config.mqttUrl, "mqtts://broker.example:8883");
    assert.equal(config.mqttUsername, "gw");
    assert.equal(config.mqttPassword, "pw");
    assert.equal(config.mqttPort, 1884);
    assert.equal(config.mqttTopicPrefix, "a/b");
    assert.equal(config.mqttSharedGroup, "gateways");
    assert.equal(config.jwtSecret, GOOD_SECRET);
    assert.equal(config.demo, false);
  });

  it("accepts the three broker schemes of the contract", () => {
    for (const url of ["mqtt://h:1883", "mqtts://h:8883", "ws://h:8080/mqtt"]) assert.equal(loadConfig({ MQTT_URL: url }).mqttUrl, url);
  });

  it("accepts PORT boundaries 0 and 65535", () => {
    assert.equal(loadConfig({ PORT: "65535" }).port, 65535);
    assert.equal(loadConfig({ PORT: "0" }).port, 0);
  });

  it("DEMO=1 / true turn the demo on, 0 / false off", () => {
    assert.equal(loadConfig({ DEMO: "1" }).demo, true);
    assert.equal(loadConfig({ DEMO: "true" }).demo, true);
    assert.equal(loadConfig({ DEMO: "0" }).demo, false);
    assert.equal(loadConfig({ DEMO: "false" }).demo, false);
  });

  it("JWT_JWKS_URL alone is accepted", () => {
    assert.equal(loadConfig({ JWT_JWKS_URL: "https://idp.example/.well-known/jwks.json" }).jwtJwksUrl, "https://idp.example/.well-known/jwks.json");
  });

  it("a JWT_SECRET of exactly 32 characters is accepted", () => {
    assert.equal(loadConfig({ JWT_SECRET: GOOD_SECRET }).jwtSecret, GOOD_SECRET);
  });
});

describe("config: each malformed variable throws a one-line ConfigError naming it", () => {
  it("PORT=abc", () => refuses({ PORT: "abc" }, "PORT"));
  it("PORT=70000", () => refuses({ PORT: "70000" }, "PORT"));
  it("PORT=-1", () => refuses({ PORT: "-1" }, "PORT"));
  it("PORT=80.5", () => refuses({ PORT: "80.5" }, "PORT"));
  it("MQTT_PORT=abc", () => refuses({ MQTT_PORT: "abc" }, "MQTT_PORT"));
  it("MQTT_PORT=65536", () => refuses({ MQTT_PORT: "65536" }, "MQTT_PORT"));
  it("MQTT_URL=http://x", () => refuses({ MQTT_URL: "http://x" }, "MQTT_URL"));
  it("MQTT_URL=not a url", () => refuses({ MQTT_URL: "not a url" }, "MQTT_URL"));
  it("MONGODB_URI=notaurl", () => refuses({ MONGODB_URI: "notaurl" }, "MONGODB_URI"));
  it("MONGODB_URI=http://db", () => refuses({ MONGODB_URI: "http://db:27017" }, "MONGODB_URI"));
  it("MONGODB_DB with a dot", () => refuses({ MONGODB_DB: "a.b" }, "MONGODB_DB"));
  it("MQTT_TOPIC_PREFIX with #", () => refuses({ MQTT_TOPIC_PREFIX: "iot/#" }, "MQTT_TOPIC_PREFIX"));
  it("MQTT_TOPIC_PREFIX with +", () => refuses({ MQTT_TOPIC_PREFIX: "iot/+/x" }, "MQTT_TOPIC_PREFIX"));
  it("MQTT_TOPIC_PREFIX with a trailing /", () => refuses({ MQTT_TOPIC_PREFIX: "iot/" }, "MQTT_TOPIC_PREFIX"));
  it("MQTT_TOPIC_PREFIX with a leading /", () => refuses({ MQTT_TOPIC_PREFIX: "/iot" }, "MQTT_TOPIC_PREFIX"));
  it("MQTT_TOPIC_PREFIX with an empty level", () => refuses({ MQTT_TOPIC_PREFIX: "a//b" }, "MQTT_TOPIC_PREFIX"));
  it("JWT_SECRET too short (31 characters)", () => refuses({ JWT_SECRET: GOOD_SECRET.slice(1) }, "JWT_SECRET"));
  it("both JWT_SECRET and JWT_JWKS_URL", () =>
    refuses({ JWT_SECRET: GOOD_SECRET, JWT_JWKS_URL: "https://idp.example/jwks.json" }, "JWT_SECRET", "JWT_JWKS_URL"));
  it("JWT_JWKS_URL not http(s)", () => refuses({ JWT_JWKS_URL: "ftp://idp.example/jwks.json" }, "JWT_JWKS_URL"));
  it("MQTT_SHARED_GROUP with /", () => refuses({ MQTT_SHARED_GROUP: "a/b" }, "MQTT_SHARED_GROUP"));
  it("MQTT_SHARED_GROUP with a wildcard", () => refuses({ MQTT_SHARED_GROUP: "g+" }, "MQTT_SHARED_GROUP"));
  it("DEMO=maybe", () => refuses({ DEMO: "maybe" }, "DEMO"));
  it("CORS_ORIGINS with a path, a wildcard or no scheme", () => {
    for (const value of ["https://a.example/app", "*", "a.example", "https://a.example,ftp://b.example"]) refuses({ CORS_ORIGINS: value }, "CORS_ORIGINS");
  });
  it("MQTT_CLIENT_MESSAGES_PER_SECOND=0", () => refuses({ MQTT_CLIENT_MESSAGES_PER_SECOND: "0" }, "MQTT_CLIENT_MESSAGES_PER_SECOND"));
  it("external store and broker without any JWT setting", () =>
    refuses({ MONGODB_URI: "mongodb://db:27017", MQTT_URL: "mqtt://broker:1883" }, "JWT_SECRET", "JWT_JWKS_URL"));
  it("the first bad variable is named even when several are bad", () => {
    assert.throws(() => loadConfig({ PORT: "abc", DEMO: "maybe" }), (e: unknown) => e instanceof ConfigError && ["PORT", "DEMO"].includes(e.variable));
  });
});

describe("config: the embedded broker's address and CORS", () => {
  it("the embedded broker listens on loopback unless MQTT_HOST says otherwise; CORS is off unless origins are listed", () => {
    const config = loadConfig({});
    assert.deepEqual([config.mqttHost, config.mqttClientMessagesPerSecond, config.corsOrigins], ["127.0.0.1", 100, []]);
    assert.equal(loadConfig({ MQTT_HOST: "0.0.0.0" }).mqttHost, "0.0.0.0");
  });
  it("CORS_ORIGINS is a comma-separated list of origins", () => {
    assert.deepEqual(loadConfig({ CORS_ORIGINS: "https://console.example.com, http://localhost:5173" }).corsOrigins, ["https://console.example.com", "http://localhost:5173"]);
  });
});

describe("config: empty values mean unset", () => {
  for (const value of ["", " "]) {
    it(`PORT=${JSON.stringify(value)} and MQTT_PORT=${JSON.stringify(value)} give the defaults, never port 0 (a random port)`, () => {
      const config = loadConfig({ PORT: value, MQTT_PORT: value });
      assert.equal(config.port, 4000);
      assert.equal(config.mqttPort, 1883);
    });
  }

  it("empty MONGODB_URI / MQTT_URL mean the embedded store and broker; empty DEMO means the default (on)", () => {
    const config = loadConfig({ MONGODB_URI: "", MQTT_URL: "", DEMO: "", MQTT_TOPIC_PREFIX: "", JWT_SECRET: "" });
    assert.equal(config.mongodbUri, undefined);
    assert.equal(config.mqttUrl, undefined);
    assert.equal(config.demo, true);
    assert.equal(config.mqttTopicPrefix, "iot");
    assert.equal(config.jwtSecret, undefined);
  });
});
