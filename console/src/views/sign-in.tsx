import { useState, type FormEvent } from "react";
import { sessionFor, SignInError, type Session } from "../api/session";

export function SignIn({ notice, onSignIn }: { notice?: string; onSignIn: (session: Session) => void }) {
  const [credential, setCredential] = useState("");
  const [error, setError] = useState<string>();
  const submit = (event: FormEvent) => {
    event.preventDefault();
    try {
      onSignIn(sessionFor(credential));
    } catch (e) {
      setError(e instanceof SignInError ? e.message : "This credential could not be read.");
    }
  };
  return (
    <main id="main" className="sign-in">
      <h1>Sign in to the operator console</h1>
      {notice && (
        <p className="message notice" role="status">
          {notice}
        </p>
      )}
      <form onSubmit={submit} noValidate>
        <label htmlFor="credential">JWT or API key</label>
        <textarea
          id="credential"
          name="credential"
          rows={4}
          value={credential}
          onChange={(e) => setCredential(e.target.value)}
          aria-describedby="credential-help"
          aria-invalid={error ? true : undefined}
          aria-errormessage={error ? "credential-error" : undefined}
          autoFocus
        />
        <p id="credential-help" className="help">
          Kept in this tab only (sessionStorage) until you sign out or close it.
        </p>
        {error && (
          <p id="credential-error" className="message error" role="alert">
            {error}
          </p>
        )}
        <button type="submit">Sign in</button>
      </form>
    </main>
  );
}
