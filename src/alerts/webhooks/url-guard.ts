import { lookup } from "node:dns/promises";
import ipaddr from "ipaddr.js";

export interface ResolvedAddress {
  address: string;
  family: 4 | 6;
}

/** A webhook URL the gateway will not call; the message says why and is safe to show the admin. */
export class RefusedWebhookUrl extends Error {
  constructor(message: string) {
    super(message);
    this.name = "RefusedWebhookUrl";
  }
}

const MAX_URL_LENGTH = 2048;

/** Lower case, without IPv6 brackets or a trailing dot: how hosts are compared with the allow-list. */
export const normalizeHost = (host: string) => host.toLowerCase().replace(/^\[(.*)\]$/, "$1").replace(/\.$/, "");

/**
 * Keeps webhooks away from the gateway's own network (SSRF): a URL is called only if every address
 * its host resolves to is public unicast, unless the host is listed in ALERT_WEBHOOK_ALLOW_HOSTS.
 * Loopback, private, link-local (cloud metadata at 169.254.169.254), unique-local (fd00:ec2::254),
 * carrier-grade NAT (100.100.100.200), multicast, reserved and the IPv6 forms that embed an IPv4
 * address (mapped, 6to4, Teredo, NAT64) are refused; ipaddr.js classifies, IPv4-mapped IPv6 as IPv4.
 * The check runs at creation and again before each attempt, whose connection then goes to exactly the
 * addresses checked, so a DNS answer that changes in between (rebinding) cannot slip through.
 */
export class WebhookUrlGuard {
  constructor(
    private readonly allowHosts: ReadonlySet<string>,
    private readonly resolve: (host: string) => Promise<ResolvedAddress[]> = resolveAll,
  ) {}

  /** The URL, or a RefusedWebhookUrl for one that is malformed or not http(s). */
  parse(raw: string): URL {
    if (raw.length > MAX_URL_LENGTH) throw new RefusedWebhookUrl(`url must be at most ${MAX_URL_LENGTH} characters`);
    let url: URL;
    try {
      url = new URL(raw.trim());
    } catch {
      throw new RefusedWebhookUrl("url is not a valid absolute URL");
    }
    if (url.protocol !== "https:" && url.protocol !== "http:") throw new RefusedWebhookUrl("url must use https:// or http://");
    if (url.username || url.password) throw new RefusedWebhookUrl("url must not carry credentials; the signature authenticates the gateway");
    if (!url.hostname) throw new RefusedWebhookUrl("url has no host");
    return url;
  }

  /** The addresses to connect to, all of them allowed; a RefusedWebhookUrl otherwise. */
  async check(url: URL): Promise<ResolvedAddress[]> {
    const host = normalizeHost(url.hostname);
    let addresses: ResolvedAddress[];
    if (ipaddr.isValid(host)) {
      addresses = [{ address: host, family: ipaddr.parse(host).kind() === "ipv6" ? 6 : 4 }];
    } else {
      try {
        addresses = await this.resolve(host);
      } catch {
        addresses = [];
      }
      if (addresses.length === 0) throw new RefusedWebhookUrl(`url host ${JSON.stringify(host)} does not resolve`);
    }
    if (this.allowHosts.has(host)) return addresses;
    for (const { address } of addresses) {
      const range = rangeOf(address);
      if (range !== "unicast") {
        throw new RefusedWebhookUrl(
          `url host ${JSON.stringify(host)} resolves to ${address}, a ${range} address; list the host in ALERT_WEBHOOK_ALLOW_HOSTS to allow it`,
        );
      }
    }
    return addresses;
  }
}

/** ipaddr.js's range name; IPv4-compatible IPv6 (`::a.b.c.d`, deprecated, ipaddr.js says unicast) counts as such. */
function rangeOf(address: string): string {
  const parsed = ipaddr.process(address);
  const range = parsed.range();
  if (range === "unicast" && parsed.kind() === "ipv6" && (parsed as ipaddr.IPv6).parts.slice(0, 6).every((part) => part === 0)) return "ipv4Compatible";
  return range;
}

async function resolveAll(host: string): Promise<ResolvedAddress[]> {
  const answers = await lookup(host, { all: true, verbatim: true });
  return answers.map(({ address, family }) => ({ address, family: family === 6 ? 6 : 4 }));
}
