import net from "node:net";
import type { AddressInfo } from "node:net";

/**
 * A TCP port that is free right now on `host`, found by letting the OS pick one for a throw-away listener.
 * Another process may take it before the caller binds it, so callers that can retry should.
 */
export function findFreePort(host = "127.0.0.1"): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once("error", reject);
    server.listen({ port: 0, host, exclusive: true }, () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}
