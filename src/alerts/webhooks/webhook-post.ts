import http from "node:http";
import https from "node:https";
import type { LookupFunction } from "node:net";
import type { ResolvedAddress } from "./url-guard";

export type AttemptOutcome = "success" | "http_error" | "timeout" | "network_error" | "refused";

export interface PostResult {
  outcome: AttemptOutcome;
  /** For the delivery's `lastError`: the status and the start of the answer, or what went wrong. */
  detail: string;
}

export interface PostLimits {
  timeoutMs: number;
  /** Bytes of the answer read at most; the rest is cut off (the status is all that counts). */
  maxResponseBytes: number;
}

const DETAIL_CHARS = 200;

/**
 * One POST to a checked URL, connecting only to `addresses` (the ones the guard allowed). Redirects
 * are not followed (a 3xx is a failed attempt like any other non-2xx), the whole exchange is bounded
 * by `timeoutMs`, and no more than `maxResponseBytes` of the answer are read.
 */
export function postOnce(url: URL, addresses: ResolvedAddress[], headers: Record<string, string>, body: string, limits: PostLimits): Promise<PostResult> {
  const pinned: LookupFunction = (_host, options, callback) => {
    const usable = addresses.filter((a) => !options.family || a.family === options.family);
    const chosen = usable.length ? usable : addresses;
    if (options.all) (callback as unknown as (e: null, all: ResolvedAddress[]) => void)(null, chosen);
    else callback(null, chosen[0]!.address, chosen[0]!.family);
  };
  return new Promise((resolve) => {
    let settled = false;
    let status: number | undefined;
    let answer = "";
    const finish = (result: PostResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      request.destroy();
      resolve(result);
    };
    const finishWithStatus = () =>
      finish({
        outcome: status! >= 200 && status! < 300 ? "success" : "http_error",
        detail: `HTTP ${status}${answer ? `: ${answer.slice(0, DETAIL_CHARS)}` : ""}`,
      });
    const timer = setTimeout(() => {
      // An answer whose status came in time counts, however slowly its body trickles.
      if (status !== undefined) finishWithStatus();
      else finish({ outcome: "timeout", detail: `no answer within ${limits.timeoutMs} ms` });
    }, limits.timeoutMs);
    const client = url.protocol === "https:" ? https : http;
    const request = client.request(
      url,
      {
        method: "POST",
        headers: { ...headers, "content-type": "application/json", "content-length": String(Buffer.byteLength(body)) },
        lookup: pinned,
        agent: false,
      },
      (response) => {
        status = response.statusCode ?? 0;
        let read = 0;
        response.setEncoding("utf8");
        response.on("data", (chunk: string) => {
          read += Buffer.byteLength(chunk);
          if (answer.length < DETAIL_CHARS) answer += chunk;
          if (read > limits.maxResponseBytes) finishWithStatus();
        });
        response.on("end", finishWithStatus);
        response.on("error", finishWithStatus);
      },
    );
    request.on("error", (error) => finish({ outcome: "network_error", detail: error.message }));
    request.end(body);
  });
}
