import { z } from "zod";
import { exceedsDepth, MAX_JSON_DEPTH } from "../common/json-shape";
import type { Command } from "./command";

/** What the gateway publishes on `{p}/devices/{id}/commands` (CONTRACT §5, `traceparent` §6.5: the publish span's). */
export function encodeCommandMessage(command: Command, traceparent?: string): string {
  return JSON.stringify({
    id: command.id,
    type: command.type,
    payload: command.payload,
    attempt: command.attempt,
    issuedAt: command.createdAt.toISOString(),
    expiresAt: command.expiresAt?.toISOString() ?? null,
    ...(traceparent ? { traceparent } : {}),
  });
}

/** A device's echo of the command's traceparent (§6.5); anything unusable is dropped, never a reason to refuse the reply. */
const echoedTraceparent = z.string().max(128).optional().catch(undefined);

/**
 * Replies are checked strictly: anything else is counted as malformed and changes nothing. A result nested
 * deeper than MAX_JSON_DEPTH is malformed too: key escaping and the store's encoder are recursive.
 */
export const deviceReplySchema = z
  .discriminatedUnion("status", [
  z.object({ id: z.string().min(1).max(64), status: z.literal("DELIVERED"), attempt: z.number().int().positive().optional(), traceparent: echoedTraceparent }),
  z.object({
    id: z.string().min(1).max(64),
    status: z.literal("SUCCEEDED"),
    result: z.record(z.string(), z.unknown()).optional(),
    attempt: z.number().int().positive().optional(),
    traceparent: echoedTraceparent,
  }),
  z.object({
    id: z.string().min(1).max(64),
    status: z.literal("FAILED"),
    error: z.object({ code: z.string().min(1).max(100), message: z.string().max(2000).optional() }),
    attempt: z.number().int().positive().optional(),
    traceparent: echoedTraceparent,
  }),
  ])
  .refine((reply) => reply.status !== "SUCCEEDED" || !exceedsDepth(reply.result, MAX_JSON_DEPTH), { message: `result nested deeper than ${MAX_JSON_DEPTH} levels` });

export type DeviceReply = z.infer<typeof deviceReplySchema>;

/** Largest reply accepted; bigger ones are refused before parsing. */
export const MAX_REPLY_BYTES = 64 * 1024;
