// cart: one in-memory cart per user (HTTP JSON).
import { serve } from './mesh-lib.mjs';

const carts = new Map();
const cartOf = (url) => url.searchParams.get('user') ?? 'guest';

serve({
  'GET /cart': async (url) => [200, { user: cartOf(url), items: carts.get(cartOf(url)) ?? [] }],
  'POST /cart': async (url, body) => {
    const items = carts.get(cartOf(url)) ?? [];
    items.push({ productId: Number(body?.productId), qty: Number(body?.qty ?? 1) });
    carts.set(cartOf(url), items);
    return [200, { user: cartOf(url), items }];
  },
});
