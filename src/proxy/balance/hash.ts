/**
 * A fast non-cryptographic 32-bit string hash for consistent hashing: FNV-1a over UTF-16
 * code units, finished with murmur3's fmix32. FNV-1a alone mixes its low bits poorly, and
 * the Maglev table and ring both reduce hashes by modulo / ordering, so the finaliser matters.
 * Keys come from clients, so this is not meant to resist collision attacks: the worst a client
 * can do is choose which endpoint its own requests go to, which a hash key already allows.
 */
export function hash32(s: string, seed = 0): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return mix32(h);
}

/** murmur3's fmix32 finaliser: a bijection on 32-bit integers with full avalanche. */
export function mix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
