import { collectDefaultMetrics, Counter, Gauge, Registry } from "prom-client";

/** Prometheus metrics of the gateway (prom-client), served on /metrics. */
export class Metrics {
  readonly registry = new Registry();
  /** Transitions into each status, counted by the replica that made them. */
  readonly commandTransitions = new Counter({
    name: "gateway_command_transitions_total",
    help: "Command status transitions made by this replica, by target status",
    labelNames: ["status"] as const,
    registers: [this.registry],
  });
  readonly repliesRejected = new Counter({
    name: "gateway_replies_rejected_total",
    help: "Device replies that changed nothing, by reason",
    labelNames: ["reason"] as const,
    registers: [this.registry],
  });
  readonly replyRetries = new Counter({
    name: "gateway_reply_apply_retries_total",
    help: "Attempts to apply a device reply again because the store was unavailable (the reply stays unacknowledged meanwhile)",
    registers: [this.registry],
  });
  readonly commandsPublished = new Counter({
    name: "gateway_commands_published_total",
    help: "Command messages published to devices (first sends and redeliveries)",
    labelNames: ["kind"] as const,
    registers: [this.registry],
  });
  readonly telemetryMessages = new Counter({
    name: "gateway_telemetry_messages_total",
    help: "Telemetry messages handled by this replica: evaluated against the rules or dropped",
    registers: [this.registry],
  });
  readonly telemetryDropped = new Counter({
    name: "gateway_telemetry_dropped_total",
    help: "Telemetry messages not evaluated, by reason",
    labelNames: ["reason"] as const,
    registers: [this.registry],
  });
  readonly ruleFirings = new Counter({
    name: "gateway_rule_firings_total",
    help: "Rule matches by outcome: sent, refused (the command API said no), failed, cooldown, disabled",
    labelNames: ["outcome"] as const,
    registers: [this.registry],
  });
  readonly mqttRefused = new Counter({
    name: "gateway_mqtt_refused_total",
    help: "What the embedded broker refused: connections, publishes, subscriptions and oversized packets, by reason",
    labelNames: ["action", "reason"] as const,
    registers: [this.registry],
  });
  readonly httpRequests = new Counter({
    name: "gateway_http_requests_total",
    help: "HTTP requests by route and status code",
    labelNames: ["route", "code"] as const,
    registers: [this.registry],
  });
  readonly wsConnections = new Gauge({
    name: "gateway_ws_connections",
    help: "Open graphql-ws connections",
    registers: [this.registry],
  });
  readonly wsConnectionsTotal = new Counter({
    name: "gateway_ws_connections_total",
    help: "graphql-ws connections accepted",
    registers: [this.registry],
  });
  readonly subscriptions = new Gauge({
    name: "gateway_subscriptions",
    help: "Active GraphQL subscriptions",
    registers: [this.registry],
  });
  readonly alertWebhookAttempts = new Counter({
    name: "gateway_alert_webhook_attempts_total",
    help: "Alert webhook delivery attempts made by this replica, by outcome: success, http_error, timeout, network_error, refused (address not allowed)",
    labelNames: ["outcome"] as const,
    registers: [this.registry],
  });
  readonly alertWebhookDeliveries = new Counter({
    name: "gateway_alert_webhook_deliveries_total",
    help: "Alert webhook deliveries ended by this replica, by outcome: delivered, failed (retried for the whole window)",
    labelNames: ["outcome"] as const,
    registers: [this.registry],
  });
  readonly alertWebhookDeliveriesScheduled = new Gauge({
    name: "gateway_alert_webhook_deliveries_scheduled",
    help: "Alert webhook deliveries this replica holds in its schedule (waiting, due or in flight)",
    registers: [this.registry],
  });
  readonly alertWebhooksFailing = new Gauge({
    name: "gateway_alert_webhooks_failing",
    help: "Alert webhooks whose last delivery gave up (all tenants, as this replica last read the store)",
    registers: [this.registry],
  });

  /** The embedded store's supervisor: FerretDB restarted after it died, or given up on (the gateway then exits). */
  readonly embeddedStoreRestarts = new Counter({
    name: "gateway_embedded_store_restarts_total",
    help: "Unexpected exits of the embedded store (FerretDB) by outcome: restarted, gave_up",
    labelNames: ["outcome"] as const,
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: "gateway_" });
  }
}
