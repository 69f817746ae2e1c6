import { createHash, randomBytes } from "node:crypto";

/** A partner system's key (CONTRACT §2), as stored: never the key itself, only its hash. */
export interface ApiKey {
  id: string;
  tenant: string;
  name: string;
  /** The command types the key may read and send. */
  commandTypes: string[];
  /** SHA-256 of the key, hex: how a presented key is found. */
  hash: string;
  createdBy: string;
  createdAt: Date;
  revokedAt?: Date;
}

/** Recognisable in logs, configs and secret scanners. */
export const API_KEY_PREFIX = "igk_";
const SECRET_BYTES = 32;
/** 32 random bytes are 43 base64url characters. */
const API_KEY_PATTERN = new RegExp(`^${API_KEY_PREFIX}[A-Za-z0-9_-]{43}$`);

/** A new key: 256 bits from the CSPRNG, so looking it up by its hash needs no constant-time compare. */
export function generateApiKey(): string {
  return API_KEY_PREFIX + randomBytes(SECRET_BYTES).toString("base64url");
}

export function hashApiKey(key: string): string {
  return createHash("sha256").update(key).digest("hex");
}

/** Whether a presented string could be one of our keys; anything else is refused without a store lookup. */
export function isWellFormedApiKey(key: string): boolean {
  return API_KEY_PATTERN.test(key);
}
