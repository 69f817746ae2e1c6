import { useEffect, useState } from "react";

/** Routes live in the fragment (`#/commands/ID`), so the gateway serves one page and a reload stays put. */
export type Route =
  | { view: "commands" }
  | { view: "command"; id: string }
  | { view: "devices" }
  | { view: "device"; id: string }
  | { view: "alerts" }
  | { view: "rules" }
  | { view: "fleet" };

export function parseRoute(hash: string): Route {
  const [view, id] = hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  if (view === "commands" && id) return { view: "command", id };
  if (view === "devices" && id) return { view: "device", id };
  if (view === "devices" || view === "alerts" || view === "rules" || view === "fleet") return { view };
  return { view: "commands" };
}

export const href = {
  commands: () => "#/commands",
  command: (id: string) => `#/commands/${encodeURIComponent(id)}`,
  devices: () => "#/devices",
  device: (id: string) => `#/devices/${encodeURIComponent(id)}`,
  alerts: () => "#/alerts",
  rules: () => "#/rules",
  fleet: () => "#/fleet",
};

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(location.hash));
  useEffect(() => {
    const update = () => setRoute(parseRoute(location.hash));
    window.addEventListener("hashchange", update);
    return () => window.removeEventListener("hashchange", update);
  }, []);
  return route;
}
