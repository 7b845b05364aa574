/**
 * The rollouts slot. Rollouts do not exist yet: this shows the "no rollouts" state. The
 * engineer who adds them replaces this component's body (and may fetch their own API here);
 * its props are the contract the pages use:
 *
 * - `namespace`/`service` absent: every rollout (the Rollouts page);
 * - given: only that service's (the service page's Rollouts section).
 */
export interface RolloutsPanelProps {
  namespace?: string;
  service?: string;
}

export function RolloutsPanel(props: RolloutsPanelProps) {
  return (
    <div className="empty" data-testid="rollouts-empty">
      No rollouts{props.service ? ` for ${props.service}` : ''}. Progressive rollouts will show their steps
      and traffic split here.
    </div>
  );
}
