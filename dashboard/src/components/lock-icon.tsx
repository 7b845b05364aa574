/** A padlock (inline SVG: no icon font, nothing fetched). */
export function LockIcon(props: { x?: number; y?: number; size?: number; title?: string }) {
  const s = props.size ?? 12;
  return (
    <svg
      className="lock"
      x={props.x}
      y={props.y}
      width={s}
      height={s}
      viewBox="0 0 16 16"
      role="img"
      aria-label={props.title ?? 'mTLS'}
    >
      <title>{props.title ?? 'mTLS'}</title>
      <path d="M4 7V5a4 4 0 0 1 8 0v2h1v8H3V7h1zm2 0h4V5a2 2 0 0 0-4 0v2z" fill="currentColor" />
    </svg>
  );
}
