/**
 * The API token of this tab (docs/dashboard.md, "API authentication").
 *
 * A token arrives in the URL fragment (`/ui/#token=hxat.…`, as `hexmesh dashboard` opens
 * it: a fragment is never sent to a server nor written to a proxy's access log), or is
 * pasted into the form shown after a 401. It is kept in sessionStorage (this tab only,
 * gone when it closes) and removed from the address bar at once, so it does not end up in
 * the history, a bookmark or a shared screenshot. Every API call sends it as
 * `Authorization: Bearer`.
 */

const STORAGE_KEY = 'hexmesh.token';

export interface AuthState {
  /** A token is stored (its text is never part of the state). */
  signedIn: boolean;
  /** Set after a 401: the API's message; the sign-in form is shown. */
  required?: string;
  /** Who the token is, once `/v1/auth/whoami` said so. */
  role?: string;
  name?: string;
  /** Bumped on every token change: polls and streams restart at once with the new one. */
  generation: number;
}

function readStored(): string | undefined {
  try {
    return sessionStorage.getItem(STORAGE_KEY) ?? undefined;
  } catch {
    return undefined; // storage disabled: the token lives in memory only
  }
}

/** The tab's token and the state behind the sign-in form (a tiny external store). */
class Auth {
  #token: string | undefined = readStored();
  #state: AuthState = { signedIn: this.#token !== undefined, generation: 0 };
  readonly #listeners = new Set<() => void>();

  get = (): AuthState => this.#state;

  subscribe = (fn: () => void): (() => void) => {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  };

  /** Headers for an API call (a fresh object: callers may add to it). */
  headers(accept: string): Record<string, string> {
    return this.#token ? { accept, authorization: `Bearer ${this.#token}` } : { accept };
  }

  /**
   * Move `#token=…` from the address bar into sessionStorage (called once, before the
   * first render). Other fragment parameters are kept.
   */
  adoptFragment(): void {
    const hash = location.hash.startsWith('#') ? location.hash.slice(1) : '';
    if (!hash.includes('token=')) return;
    const params = new URLSearchParams(hash);
    const token = params.get('token')?.trim();
    params.delete('token');
    const rest = params.toString();
    history.replaceState(history.state, '', location.pathname + location.search + (rest ? `#${rest}` : ''));
    if (token) this.#use(token);
  }

  /** Use `token` from now on. */
  signIn(token: string, who?: { role?: string; name?: string }): void {
    this.#use(token.trim(), who);
  }

  signOut(): void {
    this.#token = undefined;
    try {
      sessionStorage.removeItem(STORAGE_KEY);
    } catch {
      // nothing stored
    }
    this.#set({ signedIn: false, generation: this.#state.generation + 1 });
  }

  /** A request was refused with 401: ask for a (new) token. */
  unauthorized(message: string): void {
    if (this.#state.required !== message) this.#set({ ...this.#state, required: message });
  }

  /** Who the token is (from whoami). */
  identified(who: { role?: string; name?: string }): void {
    if (who.role !== this.#state.role || who.name !== this.#state.name)
      this.#set({ ...this.#state, role: who.role, name: who.name });
  }

  #use(token: string, who?: { role?: string; name?: string }): void {
    this.#token = token;
    try {
      sessionStorage.setItem(STORAGE_KEY, token);
    } catch {
      // memory only
    }
    this.#set({ signedIn: true, role: who?.role, name: who?.name, generation: this.#state.generation + 1 });
  }

  #set(s: AuthState): void {
    this.#state = s;
    for (const fn of this.#listeners) fn();
  }
}

export const auth = new Auth();
