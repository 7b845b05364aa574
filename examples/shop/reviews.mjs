// reviews: text reviews per product (HTTP JSON). v2 (and later versions) add stars, asked from ratings over gRPC
// through its sidecar (the channel targets HEXMESH_OUTBOUND with :authority "ratings").
import { serve, VERSION } from './mesh-lib.mjs';

const REVIEWS = {
  1: ['Fits every bolt in the house.', 'Six sides, zero regrets.'],
  2: ['Holds coffee and opinions.'],
  3: ['Slept in it during an outage.'],
};

let ratings;
if (VERSION !== 'v1') {
  const { Ratings, grpc } = await import('./ratings-proto.mjs');
  ratings = new Ratings(process.env.HEXMESH_OUTBOUND ?? '127.0.0.1:4140', grpc.credentials.createInsecure(), {
    'grpc.default_authority': 'ratings',
  });
}

function stars(productId) {
  return new Promise((resolve) =>
    ratings.GetRatings({ product_id: productId }, { deadline: Date.now() + 3000 }, (err, reply) =>
      resolve(err ? { error: `ratings unavailable: ${err.details || err.message}` } : { stars: reply.stars }),
    ),
  );
}

serve({
  'GET /reviews/*': async (url) => {
    const id = Number(url.pathname.split('/')[2]);
    const out = { productId: id, version: VERSION, reviews: REVIEWS[id] ?? [] };
    if (ratings) out.ratings = await stars(id);
    return [200, out];
  },
});
