import type { Topics } from "../src/mqtt/topics";

/**
 * How the bench drives the floor process over the floor's own broker, as a client drives the gateway over
 * GraphQL: a send request in, every transition of the command out, so both sides are timed by the bench
 * from the request to the arrival of SUCCEEDED at a subscriber.
 */

/** `floor`: each transition a findOneAndUpdate guarded by the status it leaves. `limit`: point writes by a bare `_id`. */
export type ReferenceMode = "floor" | "limit";

export interface SendRequest {
  id: string;
  deviceId: string;
  mode: ReferenceMode;
}

export interface TransitionNotice {
  id: string;
  status: string;
  /** Why a command FAILED in the floor itself (a transition that matched nothing). */
  detail?: string;
}

export const sendTopic = (topics: Topics): string => topics.bus("bench-send");
export const transitionTopic = (topics: Topics): string => topics.bus("bench-transitions");
