import type { MouseEvent, ReactNode } from 'react';
import { navigate } from '../hooks.ts';

/** An in-app link: a real href (open in a new tab works), navigation without a reload. */
export function Link(props: { to: string; className?: string; children: ReactNode; title?: string }) {
  const onClick = (e: MouseEvent<HTMLAnchorElement>) => {
    if (e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    e.preventDefault();
    navigate(props.to);
  };
  return (
    <a href={props.to} className={props.className} title={props.title} onClick={onClick}>
      {props.children}
    </a>
  );
}

export const servicePath = (namespace: string, service: string): string =>
  `/ui/services/${encodeURIComponent(namespace)}/${encodeURIComponent(service)}`;
