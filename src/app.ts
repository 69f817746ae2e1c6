import "reflect-metadata";
import { randomBytes } from "node:crypto";
import type { MongoClient } from "mongodb";
import { AlertService } from "./alerts/alert-service";
import { ApiKeyService } from "./apikeys/api-key-service";
import { Authenticator } from "./auth/authenticator";
import { JwtVerifier, type JwtSettings } from "./auth/jwt";
import { EnabledRules } from "./automation/enabled-rules";
import { RuleEngine } from "./automation/rule-engine";
import { RuleService } from "./automation/rule-service";
import { TelemetryIngest } from "./automation/telemetry-ingest";
import { CommandCatalog } from "./catalog/catalog";
import { systemClock, type Clock } from "./clock";
import { KeyedSerial } from "./common/keyed-serial";
import { TokenBuckets } from "./common/token-bucket";
import { CommandService } from "./commands/command-service";
import { Dispatcher } from "./commands/dispatcher";
import { CommandLifecycle } from "./commands/lifecycle";
import { ReplyIngest } from "./commands/reply-ingest";
import { Sweeper } from "./commands/sweeper";
import type { Config } from "./config";
import { DeviceService } from "./devices/device-service";
import { PresenceIngest } from "./devices/presence-ingest";
import { startEmbeddedBroker } from "./embedded/broker";
import { startEmbeddedStore } from "./embedded/ferretdb";
import { MqttEventTarget } from "./events/mqtt-event-target";
import { createGatewayPubSub, reviveEvent, Topic, toCommandUpdate } from "./events/pubsub";
import type { Logger } from "./logger";
import { MqttConnection } from "./mqtt/connection";
import { createTopics } from "./mqtt/topics";
import { Metrics } from "./observability/metrics";
import { startHttpServer, WS_FORBIDDEN } from "./server/http-server";
import { AlertRepository } from "./store/alert-repository";
import { ApiKeyRepository } from "./store/api-key-repository";
import { CommandRepository } from "./store/command-repository";
import { connectDatabase } from "./store/database";
import { DeviceRepository } from "./store/device-repository";
import { DispatchLeaseRepository } from "./store/dispatch-lease-repository";
import { AlertResolver } from "../resolvers/alerts/alert.resolver";
import { ApiKeyResolver } from "../resolvers/apikeys/api-key.resolver";
import { CommandTypeResolver } from "../resolvers/catalog/command-type.resolver";
import { CommandResolver } from "../resolvers/commands/command.resolver";
import { DeviceResolver } from "../resolvers/devices/device.resolver";
import { rateLimitMutations } from "../resolvers/rate-limit.middleware";
import { RuleRepository } from "./store/rule-repository";
import { RuleResolver } from "../resolvers/rules/rule.resolver";
import { buildGatewaySchema } from "../resolvers/schema";

export interface Gateway {
  /** Port of GraphQL over HTTP and WebSocket. */
  port: number;
  /** Where devices reach the broker the gateway uses. */
  mqttUrl: string;
  mongodbUri: string;
  /** The driver's client, for observers such as the benchmark's count of store commands. */
  storeClient: MongoClient;
  /** Set when no JWT configuration was given and a random secret was made (the embedded default). */
  generatedJwtSecret?: string;
  services: { commands: CommandService; devices: DeviceService; catalog: CommandCatalog; apiKeys: ApiKeyService; rules: RuleService };
  repositories: {
    commands: CommandRepository;
    devices: DeviceRepository;
    alerts: AlertRepository;
    apiKeys: ApiKeyRepository;
    rules: RuleRepository;
  };
  stop(): Promise<void>;
}

/**
 * The composition root: configuration → infrastructure (store, broker) → services → server.
 * Everything started here is stopped by `stop()`, in reverse order.
 */
export async function startGateway(config: Config, log: Logger, clock: Clock = systemClock): Promise<Gateway> {
  const stack: Array<() => Promise<void>> = [];
  const stop = async () => {
    while (stack.length) {
      try {
        await stack.pop()!();
      } catch (error) {
        log.warn({ err: (error as Error).message }, "error while stopping");
      }
    }
  };

  try {
    const topics = createTopics(config.mqttTopicPrefix);
    const metrics = new Metrics();

    let mongodbUri = config.mongodbUri;
    if (!mongodbUri) {
      const store = await startEmbeddedStore({ dataDir: config.dataDir, log });
      stack.push(() => store.stop());
      mongodbUri = store.uri;
    }
    const database = await connectDatabase(mongodbUri, config.mongodbDb, log);
    stack.push(() => database.close());
    const commandRepository = new CommandRepository(database.db);
    const deviceRepository = new DeviceRepository(database.db);
    const alertRepository = new AlertRepository(database.db);
    const apiKeyRepository = new ApiKeyRepository(database.db);
    const ruleRepository = new RuleRepository(database.db);
    await Promise.all([
      commandRepository.ensureIndexes(),
      deviceRepository.ensureIndexes(),
      alertRepository.ensureIndexes(),
      apiKeyRepository.ensureIndexes(),
      ruleRepository.ensureIndexes(),
    ]);

    let mqttUrl = config.mqttUrl;
    let mqttCredentials = { username: config.mqttUsername, password: config.mqttPassword };
    if (!mqttUrl) {
      const gatewayCredentials = { username: "gateway", password: randomBytes(24).toString("base64url") };
      const broker = await startEmbeddedBroker({ port: config.mqttPort, topics, gatewayCredentials, log });
      stack.push(() => broker.close());
      log.info({ port: broker.port }, `embedded MQTT broker on port ${broker.port}`);
      mqttUrl = broker.url;
      mqttCredentials = gatewayCredentials;
    }
    const mqtt = await MqttConnection.open({
      url: mqttUrl,
      clientId: `gateway-${config.replicaId}`,
      ...mqttCredentials,
      persistentSession: config.stableReplicaId,
      publishTimeoutMs: Math.floor((config.dispatchLeaseMs * 2) / 3),
      log,
    });
    stack.push(() => mqtt.close());

    const pubSub = createGatewayPubSub(
      await MqttEventTarget.open(mqtt, topics, reviveEvent, (error) => log.warn({ err: (error as Error).message }, "event bus error")),
    );
    const catalog = new CommandCatalog();
    const lifecycle = new CommandLifecycle(commandRepository, clock, metrics);
    lifecycle.onTransition((command) => pubSub.publish(Topic.CommandUpdated, toCommandUpdate(command)));
    const perDevice = new KeyedSerial();
    const alertService = new AlertService(
      alertRepository,
      commandRepository,
      perDevice,
      async (alert) => {
        pubSub.publish(Topic.AlertRaised, alert);
        await mqtt.publish(topics.alerts(), JSON.stringify(alert), { qos: 1 });
      },
      clock,
      log.child({ component: "alerts" }),
    );
    lifecycle.onTransition(alertService.onCommandChange);

    const dispatcher = new Dispatcher(
      commandRepository,
      deviceRepository,
      new DispatchLeaseRepository(database.db),
      lifecycle,
      perDevice,
      (command, message, onAcked) => mqtt.publish(topics.commands(command.deviceId), message, { qos: 1 }, onAcked),
      clock,
      config.replicaId,
      config.dispatchLeaseMs,
      metrics,
      log.child({ component: "dispatcher" }),
    );
    stack.push(() => dispatcher.stop());
    const commandService = new CommandService(commandRepository, deviceRepository, catalog, lifecycle, perDevice, dispatcher, clock, {
      maxQueuedPerDevice: config.maxQueuedPerDevice,
    });
    const deviceService = new DeviceService(deviceRepository, clock);
    const replies = new ReplyIngest(commandRepository, lifecycle, perDevice, clock, metrics, log.child({ component: "replies" }));
    const presence = new PresenceIngest(
      deviceRepository,
      perDevice,
      // A device announces itself online only when it (re)connects, and a retained announcement reaches
      // us when we (re)subscribe: either way what it was sent but did not acknowledge may be lost.
      (deviceId) => dispatcher.kick(deviceId, { redeliver: true }),
      clock,
      log.child({ component: "presence" }),
    );

    const onDeviceMessage = (handler: (deviceId: string, payload: Buffer) => Promise<unknown>) =>
      async (topic: string, payload: Buffer) => {
        const parsed = topics.parseDeviceTopic(topic);
        if (!parsed) return;
        await handler(parsed.deviceId, payload).catch((error) => log.warn({ topic, err: (error as Error).message }, "device message failed"));
      };
    await mqtt.subscribe(topics.allDevices("replies"), onDeviceMessage((id, payload) => replies.handle(id, payload)), {
      sharedGroup: config.mqttSharedGroup,
      ackAfterHandling: true,
    });
    await mqtt.subscribe(topics.allDevices("presence"), onDeviceMessage((id, payload) => presence.handle(id, payload)));

    const enabledRules = new EnabledRules(ruleRepository, clock, log.child({ component: "rules" }));
    const ruleService = new RuleService(ruleRepository, deviceRepository, catalog, enabledRules, clock);
    const ruleEngine = new RuleEngine(ruleRepository, enabledRules, commandService, clock, metrics, log.child({ component: "rules" }));
    const telemetry = new TelemetryIngest(deviceRepository, ruleEngine, clock, metrics, log.child({ component: "telemetry" }));
    await mqtt.subscribe(topics.allDevices("telemetry"), onDeviceMessage((id, payload) => telemetry.handle(id, payload)), {
      sharedGroup: config.mqttSharedGroup,
    });

    const sweeper = new Sweeper(
      commandRepository,
      deviceRepository,
      lifecycle,
      dispatcher,
      alertService,
      perDevice,
      clock,
      config.sweepIntervalMs,
      log.child({ component: "sweeper" }),
    );
    sweeper.start();
    stack.push(() => sweeper.stop());

    const generatedJwtSecret = config.jwtSecret || config.jwtJwksUrl ? undefined : randomBytes(32).toString("base64url");
    const jwtSettings: JwtSettings = config.jwtJwksUrl
      ? { kind: "jwks", url: config.jwtJwksUrl, issuer: config.jwtIssuer, audience: config.jwtAudience }
      : { kind: "secret", secret: (config.jwtSecret ?? generatedJwtSecret)!, issuer: config.jwtIssuer, audience: config.jwtAudience };
    const apiKeyService = new ApiKeyService(apiKeyRepository, catalog, clock);
    const authenticator = new Authenticator(new JwtVerifier(jwtSettings), apiKeyService);

    const schema = await buildGatewaySchema({
      pubSub,
      resolvers: [
        new CommandResolver(commandService, deviceService),
        new DeviceResolver(deviceService),
        new CommandTypeResolver(catalog),
        new AlertResolver(alertService),
        new ApiKeyResolver(apiKeyService),
        new RuleResolver(ruleService),
      ],
      middlewares: [rateLimitMutations(new TokenBuckets(config.rateLimitMutationsPerMinute, clock))],
    });
    const http = await startHttpServer({
      schema,
      authenticator,
      metrics,
      isReady: () => database.isConnected() && mqtt.isConnected(),
      isStoreAvailable: () => database.isConnected(),
      port: config.port,
      host: config.host,
      introspection: config.introspection,
      log,
    });
    stack.push(() => http.close());

    // A revoked key's open WebSockets are closed on every replica, not only on the one that revoked it.
    apiKeyService.onRevoked((key) => pubSub.publish(Topic.ApiKeyRevoked, { id: key.id }));
    const revocations = pubSub.subscribe(Topic.ApiKeyRevoked);
    void (async () => {
      for await (const { id } of revocations) {
        http.closeConnections((principal) => principal.kind === "apiKey" && principal.id === id, WS_FORBIDDEN, "API key revoked");
      }
    })();
    stack.push(async () => void (await revocations.return?.()));

    return {
      port: http.port,
      mqttUrl,
      mongodbUri,
      storeClient: database.client,
      generatedJwtSecret,
      services: { commands: commandService, devices: deviceService, catalog, apiKeys: apiKeyService, rules: ruleService },
      repositories: {
        commands: commandRepository,
        devices: deviceRepository,
        alerts: alertRepository,
        apiKeys: apiKeyRepository,
        rules: ruleRepository,
      },
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}
