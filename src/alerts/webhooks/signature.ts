import { createHmac, timingSafeEqual } from "node:crypto";

/** `x-alert-signature`: `t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>` (CONTRACT §6.4). */
export function signatureHeader(secret: string, body: string, unixSeconds: number): string {
  return `t=${unixSeconds},v1=${hmac(secret, unixSeconds, body)}`;
}

/** The receiver's check, as the README shows it: the header's `t` signed with the body. */
export function verifySignature(secret: string, body: string, header: string): boolean {
  const t = /(?:^|,)t=(\d+)/.exec(header)?.[1];
  const v1 = /(?:^|,)v1=([0-9a-f]{64})/.exec(header)?.[1];
  if (!t || !v1) return false;
  return timingSafeEqual(Buffer.from(hmac(secret, Number(t), body), "hex"), Buffer.from(v1, "hex"));
}

const hmac = (secret: string, unixSeconds: number, body: string) => createHmac("sha256", secret).update(`${unixSeconds}.${body}`).digest("hex");
