import { abilityOf, accessibleFilter } from "../authz/ability";
import type { Principal } from "../authz/principal";
import type { Clock } from "../clock";
import { faultPoint } from "../common/fault-points";
import type { KeyedSerial } from "../common/keyed-serial";
import type { Command, PendingAlert } from "../commands/command";
import type { CommandChange } from "../commands/lifecycle";
import { decodeCursor, encodeCursor, pageSize, toPage, type Page } from "../common/pagination";
import type { Logger } from "../logger";
import type { AlertRepository } from "../store/alert-repository";
import type { CommandRepository } from "../store/command-repository";
import type { Alert } from "./alert";

/** Where a new alert goes besides the store: subscriptions and the `{p}/alerts` topic. */
export type AlertPublisher = (alert: Alert) => Promise<void>;
/** What is derived from a stored alert before its command's mark is cleared (webhook deliveries); must be idempotent. */
export type AlertFollowUp = (alert: Alert) => Promise<void>;

/**
 * Raises alerts for commands that need a person (TIMED_OUT, FAILED, EXPIRED, ESCALATED) and resolves
 * them when the command ends well. The transition that calls for an alert writes `pendingAlert` in the
 * same update; the alert's id is derived from the command, so whichever replica writes it (or the
 * sweeper after a crash) writes it once.
 */
export class AlertService {
  constructor(
    private readonly alerts: AlertRepository,
    private readonly commands: CommandRepository,
    private readonly perDevice: KeyedSerial,
    private readonly publish: AlertPublisher,
    private readonly followUp: AlertFollowUp,
    private readonly clock: Clock,
    private readonly log: Logger,
  ) {}

  /** Lifecycle listener. */
  readonly onCommandChange = (command: Command, change: CommandChange): void => {
    this.handle(command, change).catch((error) =>
      this.log.warn({ commandId: command.id, err: (error as Error).message }, "alert handling failed; the sweeper will retry"),
    );
  };

  private async handle(command: Command, change: CommandChange): Promise<void> {
    if (command.status === "SUCCEEDED") {
      await this.alerts.resolveForCommand(command.id, this.clock.now());
    } else if (change === "deviceFailed" && command.history.at(-2)?.status === "TIMED_OUT") {
      // A late failure: the timeout is answered; the failure gets its own alert below.
      await this.alerts.resolveForCommand(command.id, this.clock.now(), ["TIMED_OUT"]);
    }
    if (command.pendingAlert) await this.raisePending(command);
  }

  /** Writes the alert a command is waiting for, publishes it if it is new, derives its follow-ups, and clears the mark. */
  async raisePending(command: Command): Promise<void> {
    const pending = command.pendingAlert;
    if (!pending) return;
    const alert: Alert = {
      id: pending.kind === "ESCALATED" ? `${command.id}:ESCALATED:${pending.level}` : `${command.id}:${pending.attempt}:${pending.kind}`,
      tenant: command.tenant,
      site: command.site,
      kind: pending.kind,
      commandId: command.id,
      deviceId: command.deviceId,
      level: pending.level,
      raisedAt: this.clock.now(),
      message: messageFor(command, pending),
    };
    const isNew = await this.alerts.insert(alert);
    faultPoint("after-alert");
    if (isNew) await this.publish(alert);
    // Until the mark is cleared a crash repeats all this; the follow-up then sees the stored alert.
    await this.followUp(isNew ? alert : ((await this.alerts.findById(alert.id)) ?? alert));
    await this.perDevice.run(command.deviceId, () =>
      this.commands.update(command.id, { "pendingAlert.kind": pending.kind, "pendingAlert.level": pending.level }, { $unset: { pendingAlert: "" } }),
    );
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
