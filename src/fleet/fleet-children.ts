import type { Principal } from "../authz/principal";
import type { CommandService } from "../commands/command-service";
import { GatewayError } from "../errors";

/**
 * Cancels a fleet command's QUEUED children as CommandService.cancel does (only those no dispatcher
 * has taken yet); one already on its way or final is left as it is.
 */
export async function cancelQueuedChildren(commands: CommandService, principal: Principal, childIds: readonly string[]): Promise<void> {
  const queue = [...childIds];
  const worker = async () => {
    for (let id = queue.pop(); id !== undefined; id = queue.pop()) {
      await commands.cancel(principal, id).catch((error) => {
        if (!(error instanceof GatewayError)) throw error;
      });
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
}
