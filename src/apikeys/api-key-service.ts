import { randomUUID } from "node:crypto";
import type { ApiKeyVerifier } from "../auth/authenticator";
import { abilityOf, accessibleFilter, allows } from "../authz/ability";
import type { Principal } from "../authz/principal";
import type { CommandCatalog } from "../catalog/catalog";
import type { Clock } from "../clock";
import { badInput, forbidden, notFound } from "../errors";
import type { ApiKeyRepository } from "../store/api-key-repository";
import { generateApiKey, hashApiKey, isWellFormedApiKey, type ApiKey } from "./api-key";

export interface CreateApiKeyRequest {
  name: string;
  commandTypes: string[];
}

const MAX_NAME_LENGTH = 100;
const MAX_COMMAND_TYPES = 100;
/** Keys a tenant lists at once; far more than a tenant has partners. */
const MAX_LISTED = 500;

/** Partner systems' keys: created and revoked by admins of a tenant, checked on every request that presents one. */
export class ApiKeyService implements ApiKeyVerifier {
  private readonly revokedListeners: Array<(key: ApiKey) => void> = [];

  constructor(
    private readonly keys: ApiKeyRepository,
    private readonly catalog: CommandCatalog,
    private readonly clock: Clock,
  ) {}

  /** The key is in the answer only; the store keeps its hash. */
  async create(principal: Principal, request: CreateApiKeyRequest): Promise<{ apiKey: ApiKey; key: string }> {
    if (!allows(abilityOf(principal), "create", "ApiKey", { tenant: principal.tenant })) throw forbidden("Only an admin may create API keys");
    const name = request.name.trim();
    if (name.length < 1 || name.length > MAX_NAME_LENGTH) throw badInput(`name must be 1 to ${MAX_NAME_LENGTH} characters`, { field: "name" });
    const commandTypes = [...new Set(request.commandTypes)];
    if (commandTypes.length < 1 || commandTypes.length > MAX_COMMAND_TYPES) {
      throw badInput(`commandTypes must list 1 to ${MAX_COMMAND_TYPES} command types`, { field: "commandTypes" });
    }
    const unknown = commandTypes.find((type) => !this.catalog.find(type));
    if (unknown !== undefined) throw badInput(`Unknown command type ${JSON.stringify(unknown)}`, { field: "commandTypes" });

    const key = generateApiKey();
    const apiKey: ApiKey = {
      id: randomUUID(),
      tenant: principal.tenant,
      name,
      commandTypes,
      hash: hashApiKey(key),
      createdBy: principal.id,
      createdAt: this.clock.now(),
    };
    await this.keys.insert(apiKey);
    return { apiKey, key };
  }

  /** Idempotent: true once the key is revoked. Another tenant's key is NOT_FOUND, like a missing one. */
  async revoke(principal: Principal, id: string): Promise<boolean> {
    const scope = accessibleFilter(abilityOf(principal), "delete", "ApiKey");
    if (!scope) throw forbidden("Only an admin may revoke API keys");
    const revoked = await this.keys.revoke(id, scope, this.clock.now());
    if (!revoked) throw notFound("API key", id);
    for (const listener of this.revokedListeners) listener(revoked);
    return true;
  }

  async list(principal: Principal): Promise<ApiKey[]> {
    const scope = accessibleFilter(abilityOf(principal), "read", "ApiKey");
    if (!scope) throw forbidden("Only an admin may list API keys");
    return this.keys.list(scope, MAX_LISTED);
  }

  /** Called after a key is revoked here, e.g. to close connections that authenticated with it. */
  onRevoked(listener: (key: ApiKey) => void): void {
    this.revokedListeners.push(listener);
  }

  /**
   * The key's principal; null for an unknown key. A revoked key is genuine but allowed nothing: FORBIDDEN.
   * Keys are found by the hash of 256 random bits, so response times say nothing useful about other keys.
   */
  async verify(key: string): Promise<Principal | null> {
    if (!isWellFormedApiKey(key)) return null;
    const stored = await this.keys.findByHash(hashApiKey(key));
    if (!stored) return null;
    if (stored.revokedAt) throw forbidden("This API key has been revoked");
    return { kind: "apiKey", id: stored.id, tenant: stored.tenant, commandTypes: stored.commandTypes };
  }
}
