import { useEffect, useMemo, useRef, useState } from "react";
import { GatewayClient } from "./api/client";
import { ConsoleContext } from "./api/hooks";
import { forgetSession, isAdmin, rememberSession, sessionFor, SignInError, storedSession, takeTokenFromLocation, type Session } from "./api/session";
import { href, useRoute, type Route } from "./router";
import { AlertsView } from "./views/alerts";
import { CommandDetailView } from "./views/command-detail";
import { CommandsView } from "./views/commands";
import { DeviceDetailView } from "./views/device-detail";
import { DevicesView } from "./views/devices";
import { FleetView } from "./views/fleet";
import { RulesView } from "./views/rules";
import { SignIn } from "./views/sign-in";

/** Signs in from `#token=…` if present, else from sessionStorage; a failure there is shown on the sign-in form. */
function initialState(): { session: Session | null; notice?: string } {
  const fromLink = takeTokenFromLocation();
  if (fromLink) {
    try {
      const session = sessionFor(fromLink);
      rememberSession(session);
      return { session };
    } catch (error) {
      return { session: null, notice: error instanceof SignInError ? error.message : "The link's token could not be read." };
    }
  }
  return { session: storedSession() };
}

// Computed once: reading the link's token also removes it from the address.
let initial: ReturnType<typeof initialState> | undefined;

export function App() {
  const [{ session, notice }, setState] = useState(() => (initial ??= initialState()));
  const signIn = (next: Session) => {
    rememberSession(next);
    setState({ session: next });
  };
  const signOut = (reason?: string) => {
    forgetSession();
    setState({ session: null, notice: reason });
  };
  if (!session) return <SignIn notice={notice} onSignIn={signIn} />;
  return <SignedIn key={session.credential} session={session} onSignOut={signOut} />;
}

function SignedIn({ session, onSignOut }: { session: Session; onSignOut: (reason?: string) => void }) {
  const signOutRef = useRef(onSignOut);
  signOutRef.current = onSignOut;
  const client = useMemo(() => new GatewayClient(session, (reason) => signOutRef.current(reason)), [session]);
  useEffect(() => () => client.close(), [client]);
  // A JWT's expiry is known: go back to sign-in when it passes, not at the next failing request.
  useEffect(() => {
    if (session.expiresAt === undefined) return;
    const ms = session.expiresAt - Date.now();
    if (ms > 2 ** 31 - 1) return;
    const timer = setTimeout(() => signOutRef.current("Your session has expired. Sign in again."), Math.max(0, ms));
    return () => clearTimeout(timer);
  }, [session]);
  const route = useRoute();
  const context = useMemo(() => ({ client, session }), [client, session]);

  return (
    <ConsoleContext.Provider value={context}>
      <a className="skip-link" href="#main">
        Skip to content
      </a>
      <header className="top">
        <span className="brand">IoT command gateway</span>
        <nav aria-label="Main">
          <NavLink route={route} to="commands" label="Commands" />
          <NavLink route={route} to="devices" label="Devices" />
          <NavLink route={route} to="fleet" label="Fleet" />
          <NavLink route={route} to="alerts" label="Alerts" />
          {isAdmin(session) && <NavLink route={route} to="rules" label="Rules" />}
        </nav>
        <span className="who" aria-label="Signed in as">
          {session.subject}
          {session.tenant ? ` · ${session.tenant}` : ""}
          {session.roles.length ? ` · ${session.roles.join(", ")}` : ""}
        </span>
        <button type="button" onClick={() => onSignOut("You signed out.")}>
          Sign out
        </button>
      </header>
      <main id="main" tabIndex={-1}>
        <View route={route} />
      </main>
    </ConsoleContext.Provider>
  );
}

function NavLink({ route, to, label }: { route: Route; to: "commands" | "devices" | "fleet" | "alerts" | "rules"; label: string }) {
  const active = route.view === to || (to === "commands" && route.view === "command") || (to === "devices" && route.view === "device");
  return (
    <a href={href[to]()} aria-current={active ? "page" : undefined}>
      {label}
    </a>
  );
}

function View({ route }: { route: Route }) {
  switch (route.view) {
    case "commands":
      return <CommandsView />;
    case "command":
      return <CommandDetailView key={route.id} id={route.id} />;
    case "devices":
      return <DevicesView />;
    case "device":
      return <DeviceDetailView key={route.id} id={route.id} />;
    case "alerts":
      return <AlertsView />;
    case "rules":
      return <RulesView />;
    case "fleet":
      return <FleetView />;
  }
}
