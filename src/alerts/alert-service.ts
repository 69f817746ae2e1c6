import { abilityOf, accessibleFilter } from "../authz/ability";
import type { Principal } from "../authz/principal";
import type { Clock } from "../clock";
import { faultPoint } from "../common/fault-points";
import type { Command, CommandStatus, PendingAlert } from "../commands/command";
import type { CommandChange, CommandLifecycle } from "../commands/lifecycle";
import { decodeCursor, encodeCursor, pageSize, toPage, type Page } from "../common/pagination";
import type { Logger } from "../logger";
import { inSpan, type TraceContext } from "../observability/tracing";
import type { AlertRepository } from "../store/alert-repository";
import { isStoreUnavailableError } from "../store/database";
import type { Alert } from "./alert";

/** Statuses that raise an alert: a command that never was in one has none to resolve. */
const ALERTING: readonly CommandStatus[] = ["TIMED_OUT", "FAILED", "EXPIRED"];
const RETRY_FIRST_MS = 500;
const RETRY_MAX_MS = 10_000;

/** Where a new alert goes besides the store: subscriptions and the `{p}/alerts` topic. */
export type AlertPublisher = (alert: Alert) => Promise<void>;
/**
 * What is derived from a stored alert before its command's mark is cleared (webhook deliveries); must
 * be idempotent. `trace`: the raise's span, which the deliveries join.
 */
export type AlertFollowUp = (alert: Alert, trace?: TraceContext) => Promise<void>;

/**
 * Raises alerts for commands that need a person (TIMED_OUT, FAILED, EXPIRED, ESCALATED) and resolves
 * them when the command ends well. The transition that calls for an alert writes `pendingAlert` in the
 * same update; the alert's id is derived from the command, so whichever replica writes it (or the
 * sweeper after a crash) writes it once.
 */
export class AlertService {
  constructor(
    private readonly alerts: AlertRepository,
    private readonly lifecycle: CommandLifecycle,
    private readonly publish: AlertPublisher,
    private readonly followUp: AlertFollowUp,
    private readonly clock: Clock,
    private readonly log: Logger,
  ) {}

  /** Lifecycle listener. */
  readonly onCommandChange = (command: Command, change: CommandChange): void => {
    void this.handleUntilDone(command, change);
  };

  /** Tried again while the store is away, so an outage does not leave an alert unwritten until a restart. */
  private async handleUntilDone(command: Command, change: CommandChange): Promise<void> {
    for (let delay = RETRY_FIRST_MS; ; delay = Math.min(delay * 2, RETRY_MAX_MS)) {
      try {
        return await this.handle(command, change);
      } catch (error) {
        if (!isStoreUnavailableError(error)) {
          this.log.warn({ commandId: command.id, err: (error as Error).message }, "alert handling failed; a restart repeats it");
          return;
        }
      }
      await new Promise((resolve) => setTimeout(resolve, delay).unref());
    }
  }

  private async handle(command: Command, change: CommandChange): Promise<void> {
    // Only a command that went through a state that raises alerts can have open ones.
    if (command.status === "SUCCEEDED" && (command.escalation || command.history.some((e) => ALERTING.includes(e.status)))) {
      await this.alerts.resolveForCommand(command.id, this.clock.now());
    } else if (change === "deviceFailed" && command.history.at(-2)?.status === "TIMED_OUT") {
      // A late failure: the timeout is answered; the failure gets its own alert below.
      await this.alerts.resolveForCommand(command.id, this.clock.now(), ["TIMED_OUT"]);
    }
    if (command.pendingAlert) await this.raisePending(command);
  }

  /**
   * Writes the alert a command is waiting for, publishes it if it is new, derives its follow-ups, and
   * clears the mark; in a span of the command's trace (under the timeout that raised it, when that is active).
   */
  raisePending(command: Command): Promise<void> {
    const pending = command.pendingAlert;
    if (!pending) return Promise.resolve();
    const attributes = { "command.id": command.id, "alert.kind": pending.kind, "alert.level": pending.level };
    return inSpan("alert.raise", { parent: command.traceparent, attributes }, (trace) => this.raiseAndClear(command, pending, trace));
  }

  private async raiseAndClear(command: Command, pending: PendingAlert, trace: TraceContext): Promise<void> {
    const alert: Alert = {
      id: alertId(command.id, pending),
      tenant: command.tenant,
      site: command.site,
      kind: pending.kind,
      commandId: command.id,
      deviceId: command.deviceId,
      level: pending.level,
      raisedAt: this.clock.now(),
      message: messageFor(command, pending),
    };
    await this.raise(alert, trace);
    await this.lifecycle.submit(
      command.id,
      (current) =>
        current.pendingAlert?.kind === pending.kind && current.pendingAlert.level === pending.level && current.pendingAlert.attempt === pending.attempt
          ? { unset: ["pendingAlert"] }
          : { refused: "alert_mark_changed" },
      command,
      { trace },
    );
  }

  /** Stores the alert once, publishes it if it is new, and derives its follow-ups (webhook deliveries). */
  async raise(alert: Alert, trace?: TraceContext): Promise<void> {
    const isNew = await this.alerts.insert(alert);
    faultPoint("after-alert");
    if (isNew) await this.publish(alert);
    // Until the command's mark is cleared a crash repeats all this; the follow-up then sees the stored alert.
    await this.followUp(isNew ? alert : ((await this.alerts.findById(alert.id)) ?? alert), trace);
  }

  async list(principal: Principal, request: { open?: boolean | null; first?: number | null; after?: string | null }): Promise<Page<Alert>> {
    const size = pageSize(request.first);
    const after = request.after ? decodeCursor<[number, string]>(request.after, ["number", "string"]) : undefined;
    const scope = accessibleFilter(abilityOf(principal), "read", "Alert");
    const cursorOf = (a: Alert) => encodeCursor([a.raisedAt.getTime(), a.id]);
    if (!scope) return toPage([], size, cursorOf);
    const rows = await this.alerts.list(scope, request.open ?? undefined, size + 1, after && { raisedAt: new Date(after[0]), id: after[1] });
    return toPage(rows, size, cursorOf);
  }
}

/** Derived from the command, so whichever replica writes an alert writes it once. */
function alertId(commandId: string, { kind, level, attempt }: PendingAlert): string {
  return kind === "ESCALATED" ? `${commandId}:ESCALATED:${level}` : `${commandId}:${attempt}:${kind}`;
}

/** The ids every alert the command can have raised would have (retention deletes them by id). */
export function possibleAlertIds(command: Command): string[] {
  if (!command.escalation && !command.history.some((e) => ALERTING.includes(e.status))) return [];
  const ids: string[] = [];
  for (let attempt = 1; attempt <= command.attempt; attempt++) {
    for (const kind of ALERTING as Array<"TIMED_OUT" | "FAILED" | "EXPIRED">) ids.push(alertId(command.id, { kind, level: 0, attempt }));
  }
  for (let level = 1; level <= (command.escalation?.level ?? 0); level++) ids.push(alertId(command.id, { kind: "ESCALATED", level, attempt: 0 }));
  return ids;
}

function messageFor(command: Command, { kind, level, attempt }: PendingAlert): string {
  const what = `${command.type} to ${command.deviceId} (attempt ${attempt})`;
  switch (kind) {
    case "TIMED_OUT":
      return `${what} got no final reply within ${command.timeoutSeconds} s`;
    case "FAILED":
      return `${what} failed: ${command.error?.code ?? "unknown"}${command.error?.message ? ` (${command.error.message})` : ""}`;
    case "EXPIRED":
      return `${what} expired before it could be sent`;
    case "ESCALATED":
      return `${what} escalated to level ${level}${command.escalation?.note ? `: ${command.escalation.note}` : ""}`;
  }
}
