/**
 * The end of the key range that holds every key starting with `prefix`, as etcd's
 * `range_end` ("prefix + 1"): keys k with prefix <= k < end. Computed on code points so
 * it agrees with byte order of UTF-8 (SQLite's BINARY collation and etcd's byte keys).
 * Returns undefined when there is no upper bound ('' or a prefix of only U+10FFFF).
 */
export function prefixEnd(prefix: string): string | undefined {
  const cps = Array.from(prefix, (c) => c.codePointAt(0)!);
  while (cps.length > 0) {
    const last = cps.pop()!;
    if (last < 0x10ffff) {
      // Skip the surrogate block: those code points cannot appear in well-formed text.
      const next = last === 0xd7ff ? 0xe000 : last + 1;
      return String.fromCodePoint(...cps, next);
    }
  }
  return undefined;
}

/** Byte-wise (UTF-8) comparison of two keys, the order etcd and SQLite use. */
export function compareKeys(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}
