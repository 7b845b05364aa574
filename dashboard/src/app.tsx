/**
 * The shell: navigation, the connection banner and the page for the current /ui/ path.
 * While the control plane is unreachable the page's last data stays, greyed; after a 401
 * the sign-in form asks for a token above the page.
 */
import { ConnectionBanner } from './components/banner.tsx';
import { Link } from './components/link.tsx';
import { SignInForm, SignedIn } from './components/sign-in.tsx';
import { useConnection, useLocation } from './hooks.ts';
import { RolloutsPage } from './pages/rollouts-page.tsx';
import { ServicePage } from './pages/service-page.tsx';
import { TapPage } from './pages/tap-page.tsx';
import { TopologyPage } from './pages/topology-page.tsx';

type Route =
  | { page: 'topology' }
  | { page: 'service'; namespace: string; service: string }
  | { page: 'tap' }
  | { page: 'rollouts' }
  | { page: 'not-found' };

export function parseRoute(pathname: string): Route {
  const parts = pathname.split('/').filter(Boolean).map(decodeURIComponent);
  if (parts[0] !== 'ui') return { page: 'topology' };
  const [, a, b, c] = parts;
  if (a === undefined || a === 'topology') return { page: 'topology' };
  if (a === 'services' && b && c) return { page: 'service', namespace: b, service: c };
  if (a === 'tap') return { page: 'tap' };
  if (a === 'rollouts') return { page: 'rollouts' };
  return { page: 'not-found' };
}

export function App() {
  const path = useLocation();
  const conn = useConnection();
  const route = parseRoute(path);
  return (
    <>
      <header>
        <Link to="/ui/" className="brand">
          hexmesh
        </Link>
        <nav>
          <Link
            to="/ui/"
            className={route.page === 'topology' || route.page === 'service' ? 'active' : undefined}
          >
            Topology
          </Link>
          <Link to="/ui/tap" className={route.page === 'tap' ? 'active' : undefined}>
            Tap
          </Link>
          <Link to="/ui/rollouts" className={route.page === 'rollouts' ? 'active' : undefined}>
            Rollouts
          </Link>
        </nav>
        <SignedIn />
        <span
          className={`conn ${!conn.online ? 'offline' : conn.denied !== undefined ? 'denied' : 'online'}`}
          data-testid="conn"
          title={conn.denied ?? conn.error}
        >
          {!conn.online ? 'unreachable' : conn.denied !== undefined ? 'not authorized' : 'connected'}
        </span>
      </header>
      <ConnectionBanner />
      <SignInForm />
      <main className={conn.online ? undefined : 'offline'}>
        {route.page === 'topology' ? <TopologyPage /> : null}
        {route.page === 'service' ? (
          <ServicePage
            key={`${route.namespace}/${route.service}`}
            namespace={route.namespace}
            service={route.service}
          />
        ) : null}
        {route.page === 'tap' ? <TapPage /> : null}
        {route.page === 'rollouts' ? <RolloutsPage /> : null}
        {route.page === 'not-found' ? (
          <section className="page">
            <h1>Not found</h1>
            <p>
              No page at <span className="mono">{path}</span>. <Link to="/ui/">Topology</Link>
            </p>
          </section>
        ) : null}
      </main>
    </>
  );
}
