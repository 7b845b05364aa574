import type { PathStarter } from './path.ts';

/** Load generator straight to the upstream: the baseline every other path is compared with. */
export const startDirect: PathStarter = async (ctx) => ({
  name: 'direct',
  origin: `http://127.0.0.1:${ctx.protocol === 'http1' ? ctx.upstreamPort : ctx.upstreamH2Port}`,
  host: 'upstream',
  proxies: [],
  hop: '-',
  close: async () => {},
});
