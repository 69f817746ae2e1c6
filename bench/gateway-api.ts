import { createClient, type Client } from "graphql-ws";
import WebSocket from "ws";
import { Completions, type Side } from "./closed-loop";

const REQUEST_TIMEOUT_MS = 30_000;
const SEND = `mutation Send($input: SendCommandInput!) { sendCommand(input: $input) { id } }`;
const REGISTER = `mutation Register($input: RegisterDeviceInput!) { registerDevice(input: $input) { id } }`;
const UPDATES = `subscription Updates($deviceId: ID) { commandUpdated(deviceId: $deviceId) { id status updatedAt } }`;

export interface CommandUpdatedEvent {
  id: string;
  status: string;
  updatedAt: string;
}

/** GraphQL over HTTP and graphql-ws, as a client of the gateway would talk to it. */
export class GatewayApi {
  constructor(
    readonly baseUrl: string,
    private readonly tokens: { admin: string; operator: string },
  ) {}

  async request<T>(query: string, variables: Record<string, unknown>, role: "admin" | "operator" = "operator"): Promise<T> {
    const post = () =>
      fetch(`${this.baseUrl}/graphql`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${this.tokens[role]}` },
        body: JSON.stringify({ query, variables }),
        // A send stuck behind a slow store fails the command (as the wait for its end does) instead of stalling the run.
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      });
    let response: Response;
    try {
      response = await post();
    } catch (error) {
      // A kept-alive connection the server closed as it was reused ("fetch failed"): once more on a new one.
      if (!(error instanceof TypeError)) throw error;
      response = await post().catch((again: Error) => {
        throw new Error(`${again.message}: ${(again.cause as Error | undefined)?.message ?? "no cause"}`);
      });
    }
    const body = (await response.json()) as { data?: T; errors?: unknown[] };
    if (body.errors?.length || !body.data) throw new Error(`GraphQL errors: ${JSON.stringify(body.errors)}`);
    return body.data;
  }

  registerDevice(id: string): Promise<unknown> {
    return this.request(REGISTER, { input: { id, site: "site-a", model: "thermostat" } }, "admin");
  }

  async sendCommand(deviceId: string, celsius = 21): Promise<string> {
    const data = await this.request<{ sendCommand: { id: string } }>(SEND, {
      input: { deviceId, type: "thermostat.setTemperature", payload: { celsius } },
    });
    return data.sendCommand.id;
  }

  /** An operator's graphql-ws connection, open once the server acknowledged `connection_init`. */
  async connect(): Promise<Client> {
    const client = createClient({
      url: `${this.baseUrl.replace(/^http/, "ws")}/graphql`,
      webSocketImpl: WebSocket,
      connectionParams: { authorization: `Bearer ${this.tokens.operator}` },
      retryAttempts: 0,
      lazy: false,
    });
    await new Promise<void>((resolveConnected, reject) => {
      client.on("connected", () => resolveConnected());
      client.on("closed", (event) => reject(new Error(`WebSocket closed: ${(event as { code?: number }).code}`)));
    });
    return client;
  }

  subscribe(client: Client, deviceId: string | null, onEvent: (event: CommandUpdatedEvent, receivedAt: number) => void): () => void {
    return client.subscribe<{ commandUpdated: CommandUpdatedEvent }>(
      { query: UPDATES, variables: { deviceId } },
      {
        next: (value) => {
          if (value.data) onEvent(value.data.commandUpdated, Date.now());
        },
        error: (error) => console.error(`bench: subscription error: ${JSON.stringify(error)}`),
        complete: () => undefined,
      },
    );
  }

  /**
   * The gateway as a closed-loop side: `sendCommand` over HTTP, its end from one subscription to every
   * command of the tenant. Resolves once that subscription demonstrably receives (a subscribe is not acknowledged).
   */
  async side(probeDeviceId: string): Promise<Side & { close(): Promise<void> }> {
    const client = await this.connect();
    const completions = new Completions();
    this.subscribe(client, null, (event) => completions.transition(event.id, event.status));
    // A probe whose end does not arrive was sent before the subscription was registered, or is slow (a loaded machine): another.
    for (let i = 0; ; i++) {
      if (i === 10) throw new Error("the gateway's completions subscription received nothing");
      const { status } = await completions.wait(await this.sendCommand(probeDeviceId), 3_000);
      if (status === "SUCCEEDED") break;
    }
    return { name: "gateway", send: (deviceId) => this.sendCommand(deviceId), completions, close: async () => void (await client.dispose()) };
  }
}
