// node:test reporter for scripts/conformance-report.ts: one JSON line per finished test
// (name, nesting level, outcome, skip/todo reason, failure message).
export default async function* conformanceReporter(source) {
  for await (const event of source) {
    if (event.type !== 'test:pass' && event.type !== 'test:fail') continue;
    const d = event.data;
    const outcome =
      d.skip !== undefined
        ? 'skipped'
        : d.todo !== undefined
          ? 'todo'
          : event.type === 'test:pass'
            ? 'passed'
            : 'failed';
    const reason = typeof d.skip === 'string' ? d.skip : typeof d.todo === 'string' ? d.todo : undefined;
    const error = d.details?.error
      ? String(d.details.error.cause?.message ?? d.details.error.message).split('\n')[0]
      : undefined;
    yield `${JSON.stringify({ name: d.name, nesting: d.nesting, file: d.file, outcome, reason, error })}\n`;
  }
}
