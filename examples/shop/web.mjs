// web: the shop's frontend. Renders products with their reviews and the cart count, calling
// catalog, cart and reviews through its sidecar by name.
import { call, serve } from './mesh-lib.mjs';

const esc = (s) =>
  String(s).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]);

async function page(headers) {
  const [products, cart] = await Promise.all([
    call('catalog', '/products'),
    call('cart', '/cart?user=guest'),
  ]);
  const list = products.status === 200 ? products.body : [];
  const reviews = await Promise.all(list.map((p) => call('reviews', `/reviews/${p.id}`, { headers })));
  const items = list
    .map((p, i) => {
      const r = reviews[i];
      const rv = r.status === 200 ? r.body : { version: '?', reviews: [`reviews unavailable (${r.status})`] };
      const stars = rv.ratings?.stars
        ? `<p class="stars">${rv.ratings.stars.map((n) => '★'.repeat(n)).join(' · ')}</p>`
        : rv.ratings?.error
          ? `<p class="stars">${esc(rv.ratings.error)}</p>`
          : '';
      return `<li><h2>${esc(p.name)} — $${p.price}</h2>
  <form method="post" action="/cart/add?product=${p.id}"><button>Add to cart</button></form>
  <p>reviews ${esc(rv.version)}:</p><ul>${rv.reviews.map((t) => `<li>${esc(t)}</li>`).join('')}</ul>${stars}</li>`;
    })
    .join('\n');
  const cartLine =
    cart.status === 200
      ? `Cart: ${cart.body.items.length} item(s)`
      : `Cart unavailable: ${cart.status} ${typeof cart.body === 'string' ? cart.body.trim() : ''}`;
  return `<!doctype html><html><head><meta charset="utf-8"><title>hexmesh shop</title></head>
<body><h1>hexmesh shop</h1><p>${esc(cartLine)}</p>
${products.status === 200 ? `<ul>${items}</ul>` : `<p>catalog unavailable (${products.status})</p>`}
</body></html>\n`;
}

serve({
  'GET /': async (_url, _body, req) => {
    // Pass the canary header on, so the route can send this user's reviews calls to v2.
    const headers = req.headers['x-shop-version'] ? { 'x-shop-version': req.headers['x-shop-version'] } : {};
    return [200, await page(headers), 'text/html; charset=utf-8'];
  },
  'POST /cart/add': async (url) => {
    const r = await call('cart', '/cart?user=guest', {
      method: 'POST',
      body: { productId: Number(url.searchParams.get('product')) },
    });
    return r.status === 200
      ? [303, '', 'text/plain', { location: '/' }]
      : [502, 'cart unavailable\n', 'text/plain'];
  },
  // Reaches every backend once: catalog, cart, reviews v2 (x-shop-version: v2) and, through it, ratings over gRPC.
  'GET /api/backends': async () => {
    const [catalog, cart, reviews] = await Promise.all([
      call('catalog', '/products'),
      call('cart', '/cart?user=probe'),
      call('reviews', '/reviews/1', { headers: { 'x-shop-version': 'v2' } }),
    ]);
    const out = {
      catalog: catalog.status === 200 && Array.isArray(catalog.body),
      cart: cart.status === 200,
      reviews: reviews.status === 200 ? reviews.body.version : false,
      ratings: Array.isArray(reviews.body?.ratings?.stars) && reviews.body.ratings.stars.length > 0,
    };
    const ok = out.catalog && out.cart && out.reviews === 'v2' && out.ratings;
    return [ok ? 200 : 502, out];
  },
});
