// catalog: the products (HTTP JSON).
import { serve } from './mesh-lib.mjs';

const PRODUCTS = [
  { id: 1, name: 'Hex key set', price: 12.5 },
  { id: 2, name: 'Sidecar mug', price: 9 },
  { id: 3, name: 'Mesh hammock', price: 79 },
];

serve({
  'GET /products': async () => [200, PRODUCTS],
  'GET /products/*': async (url) => {
    const p = PRODUCTS.find((x) => x.id === Number(url.pathname.split('/')[2]));
    return p ? [200, p] : [404, { error: 'no such product' }];
  },
});
