import { RolloutsPanel } from '../rollouts/rollouts-panel.tsx';

export function RolloutsPage() {
  return (
    <section className="page">
      <h1>Rollouts</h1>
      <RolloutsPanel />
    </section>
  );
}
