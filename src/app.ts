import "reflect-metadata";
import { randomBytes } from "node:crypto";
import { alertMessage } from "./alerts/alert";
import type { MongoClient } from "mongodb";
import { AlertService } from "./alerts/alert-service";
import { AlertWebhookService } from "./alerts/webhooks/alert-webhook-service";
import { AlertDeliveryWorker } from "./alerts/webhooks/delivery-worker";
import { WebhookUrlGuard } from "./alerts/webhooks/url-guard";
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
import { soleWriterLeases } from "./commands/dispatch-leases";
import { Dispatcher } from "./commands/dispatcher";
import { CommandLifecycle } from "./commands/lifecycle";
import { ReplyIngest } from "./commands/reply-ingest";
import { Superseding } from "./commands/superseding";
import { Sweeper } from "./commands/sweeper";
import type { Config } from "./config";
import { DeviceService } from "./devices/device-service";
import { DeviceStateService } from "./devices/device-state-service";
import { PresenceIngest } from "./devices/presence-ingest";
import { startEmbeddedBroker } from "./embedded/broker";
import { startEmbeddedStore, type EmbeddedStore, type EmbeddedStorePorts } from "./embedded/ferretdb";
import { MqttEventTarget } from "./events/mqtt-event-target";
import { createGatewayPubSub, reviveEvent, Topic, toCommandUpdate } from "./events/pubsub";
import type { Logger } from "./logger";
import { MqttConnection } from "./mqtt/connection";
import { createTopics } from "./mqtt/topics";
import { Metrics } from "./observability/metrics";
import { inEventOrSpan, inSpan, SpanKind } from "./observability/tracing";
import { LimitValidators } from "./payload-limits/limit-schema";
import { PayloadLimitService } from "./payload-limits/payload-limit-service";
import { PayloadLimits } from "./payload-limits/payload-limits";
import { startHttpServer, WS_FORBIDDEN } from "./server/http-server";
import { AlertDeliveryRepository } from "./store/alert-delivery-repository";
import { AlertRepository } from "./store/alert-repository";
import { AlertWebhookRepository } from "./store/alert-webhook-repository";
import { ApiKeyRepository } from "./store/api-key-repository";
import { CommandRepository } from "./store/command-repository";
import { connectDatabase, retryWhileUnavailable } from "./store/database";
import { DeviceRepository } from "./store/device-repository";
import { DispatchLeaseRepository } from "./store/dispatch-lease-repository";
import { PayloadLimitRepository } from "./store/payload-limit-repository";
import { guardRefusalsAsMisses } from "./embedded/sqlite-store-ports";
import { mongoCommandIdQueries, mongoFleetIdQueries, mongoVersionedWrites, withDefaultIdQueries } from "./store/store-ports";
import { ActiveCommands } from "./commands/active-commands";
import type { Command } from "./commands/command";
import { DeviceDirectory } from "./devices/device-directory";
import { Retention } from "./retention/retention";
import { AlertResolver } from "../resolvers/alerts/alert.resolver";
import { AlertWebhookResolver } from "../resolvers/alerts/alert-webhook.resolver";
import { ApiKeyResolver } from "../resolvers/apikeys/api-key.resolver";
import { CommandTypeResolver } from "../resolvers/catalog/command-type.resolver";
import { CommandResolver } from "../resolvers/commands/command.resolver";
import { DeviceResolver } from "../resolvers/devices/device.resolver";
import { PayloadLimitResolver } from "../resolvers/payload-limits/payload-limit.resolver";
import { rateLimitMutations } from "../resolvers/rate-limit.middleware";
import { RuleRepository } from "./store/rule-repository";
import { RuleResolver } from "../resolvers/rules/rule.resolver";
import { FleetCommandResolver } from "../resolvers/fleet/fleet.resolver";
import { FleetDriver } from "./fleet/fleet-driver";
import { FleetCommandService } from "./fleet/fleet-service";
import { FleetTargets } from "./fleet/fleet-targets";
import { FleetCommandRepository } from "./store/fleet-command-repository";
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
  /**
   * The embedded store's implementations of the store ports (src/store/store-ports.ts), when the gateway started the
   * embedded store on SQLite; otherwise the MongoDB ones apply.
   */
  storePorts?: EmbeddedStorePorts;
  services: {
    commands: CommandService;
    devices: DeviceService;
    catalog: CommandCatalog;
    apiKeys: ApiKeyService;
    rules: RuleService;
    payloadLimits: PayloadLimitService;
    fleetCommands: FleetCommandService;
  };
  repositories: {
    commands: CommandRepository;
    devices: DeviceRepository;
    alerts: AlertRepository;
    apiKeys: ApiKeyRepository;
    rules: RuleRepository;
    payloadLimits: PayloadLimitRepository;
    alertDeliveries: AlertDeliveryRepository;
    fleetCommands: FleetCommandRepository;
  };
  stop(): Promise<void>;
}

/** How long after a deadline the replicas that did not dispatch a command step in (by compare-and-set). */
const DEADLINE_GRACE_MS = 2_000;
/** A fleet command's driver renews its lease every third of this; another replica takes over after it. */
const FLEET_LEASE_MS = 6_000;

/**
 * The composition root: configuration → infrastructure (store, broker) → services → server.
 * Everything started here is stopped by `stop()`, in reverse order.
 */
export interface StartOptions {
  /** Emit the driver's command events on `storeClient` (the benchmark counts store commands with them). */
  monitorStoreCommands?: boolean;
}

export async function startGateway(config: Config, log: Logger, clock: Clock = systemClock, options: StartOptions = {}): Promise<Gateway> {
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
    let embeddedStore: EmbeddedStore | undefined;
    // The embedded store locks its data directory: then this process is the store's only writer.
    const soleWriter = !mongodbUri;
    if (!mongodbUri) {
      const store = (embeddedStore = await startEmbeddedStore({ dataDir: config.dataDir, log }));
      stack.push(() => store.stop());
      mongodbUri = store.uri;
      store.onSupervision((event) => {
        if (event.kind === "restarted") {
          metrics.embeddedStoreRestarts.inc({ outcome: "restarted" });
          return;
        }
        // Nothing works without the store and the data is on disk: exit, so whatever runs the gateway restarts it.
        metrics.embeddedStoreRestarts.inc({ outcome: "gave_up" });
        log.fatal({ err: event.error.message }, "the embedded store cannot be restarted; the gateway exits");
        setTimeout(() => process.exit(1), 10_000).unref(); // a stop step that waits for the store must not keep it up
        void stop().finally(() => process.exit(1));
      });
    }
    const database = await connectDatabase(mongodbUri, config.mongodbDb, log, { monitorCommands: options.monitorStoreCommands });
    stack.push(() => database.close());
    const deviceRepository = new DeviceRepository(database.db, { soleWriter });
    const alertRepository = new AlertRepository(database.db);
    const apiKeyRepository = new ApiKeyRepository(database.db);
    const ruleRepository = new RuleRepository(database.db);
    const payloadLimitRepository = new PayloadLimitRepository(database.db);
    const webhookRepository = new AlertWebhookRepository(database.db);
    const deliveryRepository = new AlertDeliveryRepository(database.db);
    // A small collection written by compare-and-set on {_id, v}: the MongoDB form on every store.
    const fleetCommandRepository = new FleetCommandRepository(database.db);
    await retryWhileUnavailable(() => Promise.all([
      webhookRepository.ensureIndexes(),
      deliveryRepository.ensureIndexes(),
      fleetCommandRepository.ensureIndexes(),
      new CommandRepository(database.db).ensureIndexes(embeddedStore?.indexFilter),
      deviceRepository.ensureIndexes(),
      alertRepository.ensureIndexes(),
      apiKeyRepository.ensureIndexes(),
      ruleRepository.ensureIndexes(),
      payloadLimitRepository.ensureIndexes(),
    ]), log, "creating indexes");
    // After ensureIndexes: the tuning works on the tables behind the collections.
    const storePorts = await embeddedStore?.tune(database.db, config.mongodbDb);
    const commandRepository = new CommandRepository(
      database.db,
      storePorts?.versionedWrites ?? guardRefusalsAsMisses(mongoVersionedWrites),
      storePorts?.commandListIndex,
    );
    // The embedded store migrated before installing its version guard (and a scan of history there is costly).
    if (!storePorts) await retryWhileUnavailable(() => commandRepository.migrateVersions(), log, "giving old commands a version");
    const commandIds = withDefaultIdQueries(storePorts?.commandIdQueries, mongoCommandIdQueries(commandRepository.collection));
    const activeCommands = new ActiveCommands();
    const deviceDirectory = new DeviceDirectory(deviceRepository);
    await deviceDirectory.load();

    let mqttUrl = config.mqttUrl;
    let mqttCredentials = { username: config.mqttUsername, password: config.mqttPassword };
    if (!mqttUrl) {
      const gatewayCredentials = { username: "gateway", password: randomBytes(24).toString("base64url") };
      const broker = await startEmbeddedBroker({
        port: config.mqttPort,
        host: config.mqttHost,
        topics,
        gatewayCredentials,
        devices: deviceDirectory,
        maxMessagesPerSecond: config.mqttClientMessagesPerSecond,
        onRefused: ({ action, reason }) => metrics.mqttRefused.inc({ action, reason }),
        log,
      });
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
    /** Runs `handle` for every event of a bus subscription (events from any replica) until the gateway stops. */
    const onBus = <T>(events: AsyncIterableIterator<T>, handle: (event: T) => void) => {
      void (async () => {
        for await (const event of events) handle(event);
      })();
      stack.push(async () => void (await events.return?.()));
    };
    const catalog = new CommandCatalog();
    const lifecycle = new CommandLifecycle(commandRepository, activeCommands, clock, metrics);
    // An event of the span that made the change (a request, a reply); a change with none (a timeout) gets a span.
    lifecycle.onTransition((command, change) =>
      inEventOrSpan(
        "subscription commandUpdated",
        { kind: SpanKind.PRODUCER, parent: command.traceparent, attributes: { "command.id": command.id, "command.status": command.status, "command.change": change } },
        () => pubSub.publish(Topic.CommandUpdated, toCommandUpdate(command)),
      ),
    );
    // Other replicas' changes keep this replica's memory current (its own echo changes nothing).
    onBus(pubSub.subscribe(Topic.CommandUpdated), (command) => activeCommands.observe(command as Command));
    onBus(pubSub.subscribe(Topic.DeviceRegistered), (device) => deviceDirectory.registered(device));
    const perDevice = new KeyedSerial();
    const webhookUrlGuard = new WebhookUrlGuard(config.alertWebhookAllowHosts);
    const deliverySettings = {
      firstRetryMs: config.alertWebhookFirstRetryMs,
      retryWindowMs: config.alertWebhookRetryWindowMs,
      timeoutMs: config.alertWebhookTimeoutMs,
      safetyNet: !soleWriter,
    };
    const deliveries = new AlertDeliveryWorker(deliveryRepository, webhookRepository, alertRepository, webhookUrlGuard, clock, config.replicaId, deliverySettings, metrics, log.child({ component: "webhooks" }));
    deliveries.start();
    stack.push(() => deliveries.stop());
    const alertService = new AlertService(
      alertRepository,
      lifecycle,
      async (alert) => {
        pubSub.publish(Topic.AlertRaised, alert);
        await mqtt.publish(topics.alerts(), alertMessage(alert), { qos: 1 });
      },
      deliveries.deriveFor,
      clock,
      log.child({ component: "alerts" }),
    );
    lifecycle.onTransition(alertService.onCommandChange);

    const superseding = new Superseding(activeCommands, lifecycle, (type) => catalog.find(type), clock);
    const dispatcher = new Dispatcher(
      activeCommands,
      deviceDirectory,
      soleWriter ? soleWriterLeases : new DispatchLeaseRepository(database.db),
      lifecycle,
      superseding,
      perDevice,
      (command, message, onAcked) => mqtt.publish(topics.commands(command.deviceId), message, { qos: 1 }, onAcked),
      clock,
      config.replicaId,
      config.dispatchLeaseMs,
      metrics,
      log.child({ component: "dispatcher" }),
    );
    stack.push(() => dispatcher.stop());
    const limitValidators = new LimitValidators();
    const payloadLimits = new PayloadLimits(payloadLimitRepository, limitValidators, clock, log.child({ component: "payload-limits" }));
    onBus(pubSub.subscribe(Topic.PayloadLimitsChanged), ({ tenant }) => payloadLimits.invalidate(tenant));
    const payloadLimitService = new PayloadLimitService(
      payloadLimitRepository,
      catalog,
      limitValidators,
      payloadLimits,
      (tenant) => pubSub.publish(Topic.PayloadLimitsChanged, { tenant }),
      clock,
    );
    const commandService = new CommandService(commandRepository, deviceDirectory, activeCommands, catalog, payloadLimits, lifecycle, dispatcher, superseding, clock, {
      maxQueuedPerDevice: config.maxQueuedPerDevice,
    });
    const deviceService = new DeviceService(deviceRepository, clock);
    // Every replica's directory (and so its embedded broker's CONNECT check) learns of the device.
    deviceService.onRegistered((device) => {
      deviceDirectory.registered(device);
      pubSub.publish(Topic.DeviceRegistered, device);
    });
    const deviceState = new DeviceStateService(
      deviceRepository,
      soleWriter
        ? deviceDirectory
        : { find: (id) => deviceRepository.findById(id), reportedChanged: (id, reported, at) => deviceDirectory.reportedChanged(id, reported, at) },
      activeCommands,
      catalog,
      perDevice,
      clock,
      log.child({ component: "device-state" }),
    );
    deviceState.onChange((device) => pubSub.publish(Topic.DeviceUpdated, device));
    lifecycle.onTransition(deviceState.onCommandChange);
    const replies = new ReplyIngest(
      commandRepository,
      activeCommands,
      deviceDirectory,
      lifecycle,
      perDevice,
      clock,
      metrics,
      log.child({ component: "replies" }),
    );
    stack.push(async () => replies.stop());
    const sweeper = new Sweeper(
      commandRepository,
      commandIds,
      activeCommands,
      deviceDirectory,
      lifecycle,
      dispatcher,
      alertService,
      clock,
      { owner: config.replicaId, graceMs: DEADLINE_GRACE_MS, leaseMs: config.dispatchLeaseMs, safetyNet: !soleWriter },
      log.child({ component: "sweeper" }),
    );
    await sweeper.start();
    stack.push(() => sweeper.stop());
    const retention = new Retention(
      commandRepository,
      alertRepository,
      { deliveries: deliveryRepository, webhooks: webhookRepository },
      commandIds,
      { repository: fleetCommandRepository, ids: storePorts?.fleetIdQueries ?? mongoFleetIdQueries(fleetCommandRepository.collection) },
      config.retentionDays,
      clock,
      log.child({ component: "retention" }),
    );
    retention.start();
    stack.push(() => retention.stop());
    const presence = new PresenceIngest(
      deviceRepository,
      deviceDirectory,
      perDevice,
      // A device announces itself online only when it (re)connects, and a retained announcement reaches
      // us when we (re)subscribe: either way what it was sent but did not acknowledge may be lost.
      (deviceId) => dispatcher.announced(deviceId),
      (device) => deviceState.presenceChanged(device),
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
    // Publishes failed while the broker was away; a persistent session brings no retained presence to kick them.
    mqtt.onReconnected(() => sweeper.kickQueuedDevices());

    const fleetDriver = new FleetDriver(
      // A sole writer drives every fleet command itself: its leases, like its devices', cost no store write.
      soleWriter ? soleWriterLeases : new DispatchLeaseRepository(database.db, "fleet_leases"),
      {
        fleets: fleetCommandRepository,
        commands: commandRepository,
        send: commandService,
        targets: new FleetTargets(deviceDirectory, catalog, payloadLimits),
        raiseAlert: (alert) => alertService.raise(alert),
        publish: (fleet) => pubSub.publish(Topic.FleetCommandUpdated, fleet),
        clock,
        log: log.child({ component: "fleet" }),
      },
      { owner: config.replicaId, leaseMs: FLEET_LEASE_MS },
      log.child({ component: "fleet" }),
    );
    lifecycle.onTransition((command) => fleetDriver.childChanged(command));
    onBus(pubSub.subscribe(Topic.CommandUpdated), (command) => fleetDriver.childChanged(command as Command));
    onBus(pubSub.subscribe(Topic.FleetCommandUpdated), (fleet) => fleetDriver.changed(fleet));
    const fleetCommandService = new FleetCommandService(
      fleetCommandRepository,
      new FleetTargets(deviceDirectory, catalog, payloadLimits),
      catalog,
      commandService,
      activeCommands,
      clock,
      (fleet) => {
        fleetDriver.changed(fleet);
        pubSub.publish(Topic.FleetCommandUpdated, fleet);
      },
      fleetDriver,
    );
    await fleetDriver.start();
    stack.push(() => fleetDriver.stop());

    const enabledRules = new EnabledRules(ruleRepository, clock, log.child({ component: "rules" }));
    const ruleService = new RuleService(ruleRepository, deviceRepository, catalog, enabledRules, clock);
    const ruleEngine = new RuleEngine(ruleRepository, enabledRules, commandService, clock, metrics, log.child({ component: "rules" }));
    const telemetry = new TelemetryIngest(deviceRepository, ruleEngine, deviceState, clock, metrics, log.child({ component: "telemetry" }));
    // A rule-fired command's trace starts at the telemetry message that fired it.
    const telemetrySpan = (deviceId: string) => ({ kind: SpanKind.CONSUMER, root: true, attributes: { "messaging.system": "mqtt", "device.id": deviceId } });
    await mqtt.subscribe(topics.allDevices("telemetry"), onDeviceMessage((id, payload) => inSpan("telemetry.message", telemetrySpan(id), (trace) => telemetry.handle(id, payload, trace))), {
      sharedGroup: config.mqttSharedGroup,
    });


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
        new DeviceResolver(deviceService, deviceState),
        new CommandTypeResolver(catalog, payloadLimits),
        new AlertResolver(alertService),
        new AlertWebhookResolver(new AlertWebhookService(webhookRepository, deliveryRepository, webhookUrlGuard, clock)),
        new ApiKeyResolver(apiKeyService),
        new RuleResolver(ruleService),
        new PayloadLimitResolver(payloadLimitService),
        new FleetCommandResolver(fleetCommandService),
      ],
      middlewares: [rateLimitMutations(new TokenBuckets(config.rateLimitMutationsPerMinute, clock))],
    });
    const http = await startHttpServer({
      schema,
      authenticator,
      metrics,
      isReady: () => database.isConnected() && mqtt.isConnected() && (embeddedStore?.isRunning() ?? true),
      isStoreAvailable: () => database.isConnected(),
      port: config.port,
      host: config.host,
      introspection: config.introspection,
      corsOrigins: config.corsOrigins,
      log,
    });
    stack.push(() => http.close());

    // A revoked key's open WebSockets are closed on every replica, not only on the one that revoked it.
    apiKeyService.onRevoked((key) => pubSub.publish(Topic.ApiKeyRevoked, { id: key.id }));
    onBus(pubSub.subscribe(Topic.ApiKeyRevoked), ({ id }) =>
      http.closeConnections((principal) => principal.kind === "apiKey" && principal.id === id, WS_FORBIDDEN, "API key revoked"),
    );

    return {
      port: http.port,
      mqttUrl,
      mongodbUri,
      storeClient: database.client,
      generatedJwtSecret,
      storePorts,
      services: {
        commands: commandService,
        devices: deviceService,
        catalog,
        apiKeys: apiKeyService,
        rules: ruleService,
        payloadLimits: payloadLimitService,
        fleetCommands: fleetCommandService,
      },
      repositories: {
        commands: commandRepository,
        devices: deviceRepository,
        alerts: alertRepository,
        apiKeys: apiKeyRepository,
        rules: ruleRepository,
        payloadLimits: payloadLimitRepository,
        alertDeliveries: deliveryRepository,
        fleetCommands: fleetCommandRepository,
      },
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}
