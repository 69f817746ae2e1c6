import type { TypedDocumentNode } from "@graphql-typed-document-node/core";
import { createContext, useCallback, useContext, useEffect, useRef, useState } from "react";
import { flushSync } from "react-dom";
import type { GatewayClient, GatewayRequestError } from "./client";
import type { Session } from "./session";

export interface ConsoleContextValue {
  client: GatewayClient;
  session: Session;
}

export const ConsoleContext = createContext<ConsoleContextValue | null>(null);

export function useConsole(): ConsoleContextValue {
  const value = useContext(ConsoleContext);
  if (!value) throw new Error("useConsole outside the signed-in console");
  return value;
}

export interface QueryState<R> {
  data?: R;
  error?: GatewayRequestError;
  loading: boolean;
  reload: () => void;
}

/** Runs the query when `key` changes; `reload` runs it again (keeping the data shown meanwhile). */
export function useQuery<R, V>(document: TypedDocumentNode<R, V>, variables: V, key: string, pollMs?: number): QueryState<R> {
  const { client } = useConsole();
  const [state, setState] = useState<{ data?: R; error?: GatewayRequestError; loading: boolean }>({ loading: true });
  const [round, setRound] = useState(0);
  const latest = useRef(0);
  const variablesRef = useRef(variables);
  variablesRef.current = variables;

  useEffect(() => {
    const ticket = ++latest.current;
    setState((previous) => ({ ...previous, loading: true }));
    client.request(document, variablesRef.current).then(
      (data) => ticket === latest.current && setState({ data, loading: false }),
      (error: GatewayRequestError) => ticket === latest.current && setState((previous) => ({ data: previous.data, error, loading: false })),
    );
  }, [client, document, key, round]);

  useEffect(() => {
    if (!pollMs) return;
    const timer = setInterval(() => setRound((r) => r + 1), pollMs);
    return () => clearInterval(timer);
  }, [pollMs]);

  const reload = useCallback(() => setRound((r) => r + 1), []);
  return { ...state, reload };
}

/** Subscribes while mounted (and again when `key` changes); `onData` may change without resubscribing. */
export function useSubscription<R, V>(document: TypedDocumentNode<R, V>, variables: V, key: string, onData: (data: R) => void): GatewayRequestError | undefined {
  const { client } = useConsole();
  const [error, setError] = useState<GatewayRequestError>();
  const handler = useRef(onData);
  handler.current = onData;
  const variablesRef = useRef(variables);
  variablesRef.current = variables;
  useEffect(() => {
    setError(undefined);
    return client.subscribe(
      document,
      variablesRef.current,
      // Each event is rendered before the next one is handled, so no state a command passes through is skipped on screen.
      (data) =>
        flushSync(() => {
          setError(undefined);
          handler.current(data);
        }),
      setError,
    );
  }, [client, document, key]);
  return error;
}

/** The current time, advancing every second, for ages ("3 s ago"). */
export function useNow(): number {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(timer);
  }, []);
  return now;
}
