/**
 * The sign-in form shown after a 401 (paste an API token), and the header's "signed in as"
 * with sign-out. A pasted token is checked with `/v1/auth/whoami` before it is kept.
 */
import { useEffect, useState, type FormEvent } from 'react';
import { auth } from '../auth.ts';
import { useAuth } from '../hooks.ts';

interface WhoAmI {
  auth: 'off' | 'enforce';
  role?: string;
  name?: string;
}

/** Who `token` is (default: the tab's token); a refusal throws the API's message. */
async function whoami(token?: string): Promise<WhoAmI> {
  const headers = token
    ? { accept: 'application/json', authorization: `Bearer ${token}` }
    : auth.headers('application/json');
  const res = await fetch('/v1/auth/whoami', { headers });
  const text = await res.text();
  if (res.status === 401 && !token) auth.unauthorized(apiErrorMessage(res, text));
  if (!res.ok) throw new Error(apiErrorMessage(res, text));
  return JSON.parse(text) as WhoAmI;
}

/** The API's message without triggering the 401 form again (this is the form). */
function apiErrorMessage(res: Response, text: string): string {
  try {
    return (JSON.parse(text) as { error?: { message?: string } }).error?.message ?? `HTTP ${res.status}`;
  } catch {
    return `HTTP ${res.status}`;
  }
}

export function SignInForm() {
  const a = useAuth();
  const [token, setToken] = useState('');
  const [error, setError] = useState<string | undefined>();
  const [busy, setBusy] = useState(false);
  if (a.required === undefined) return null;
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const t = token.trim();
    if (!t) return;
    setBusy(true);
    try {
      const who = await whoami(t);
      setToken('');
      setError(undefined);
      auth.signIn(t, who);
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <form className="banner signin" onSubmit={submit} data-testid="signin">
      <div>
        <strong>{a.signedIn ? 'Token refused' : 'Sign in'}</strong> — the control plane asks for an API token:{' '}
        <span className="muted">{a.required}</span>
      </div>
      <div className="signin-row">
        <input
          type="password"
          name="token"
          autoComplete="off"
          spellCheck={false}
          placeholder="hxat.… (hexmesh auth token create --role viewer)"
          value={token}
          onChange={(e) => setToken(e.target.value)}
          size={48}
          aria-label="API token"
        />
        <button type="submit" disabled={busy}>
          Sign in
        </button>
      </div>
      {error ? (
        <div className="signin-error" data-testid="signin-error">
          {error}
        </div>
      ) : null}
      <div className="muted small">
        Kept in this tab only (sessionStorage) and sent as <span className="mono">Authorization: Bearer</span>
        . Or open the URL <span className="mono">hexmesh dashboard</span> prints.
      </div>
    </form>
  );
}

/** "role viewer · sign out" in the header, once a token is in use. */
export function SignedIn() {
  const a = useAuth();
  useEffect(() => {
    if (!a.signedIn || a.role !== undefined) return;
    // Who is this token? (Also the first check of a token that came in the URL.)
    whoami().then(
      (who) => auth.identified({ role: who.role ?? `auth ${who.auth}`, name: who.name }),
      () => {},
    );
  }, [a.signedIn, a.role, a.generation]);
  if (!a.signedIn) return null;
  return (
    <span className="signed-in" data-testid="signed-in">
      {a.role ? `${a.role}${a.name ? ` (${a.name})` : ''}` : 'token'}{' '}
      <button className="link" onClick={() => auth.signOut()}>
        sign out
      </button>
    </span>
  );
}
