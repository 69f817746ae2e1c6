import { allows, type Action, type AppAbility } from "../authz/ability";
import type { Command } from "./command";
import { ESCALATABLE, TRANSITIONS } from "./state-machine";

/** What an operator can do to a command (CONTRACT §6.1 `CommandAction`). */
export const COMMAND_ACTIONS = ["RETRY", "ESCALATE", "CANCEL"] as const;
export type CommandAction = (typeof COMMAND_ACTIONS)[number];

/** Each action: the policy permission it needs and the statuses the state machine takes it from. */
const ACTION_RULES: Readonly<Record<CommandAction, { permission: Action; from: readonly Command["status"][] }>> = {
  RETRY: { permission: "retry", from: TRANSITIONS.retry.from },
  ESCALATE: { permission: "escalate", from: ESCALATABLE },
  CANCEL: { permission: "cancel", from: TRANSITIONS.cancel.from },
};

/** The fields the decision reads (a stored command or one from the event bus). */
export type ActionSubject = Pick<Command, "status" | "tenant" | "site" | "deviceId" | "type" | "issuedBy">;

/**
 * The actions this ability may take on the command in its current state, so a console shows only the
 * buttons that would succeed. A race can still lose (the command moves on): the mutation then answers CONFLICT.
 */
export function allowedActions(ability: AppAbility, command: ActionSubject): CommandAction[] {
  return COMMAND_ACTIONS.filter((action) => {
    const rule = ACTION_RULES[action];
    return rule.from.includes(command.status) && allows(ability, rule.permission, "Command", command);
  });
}
