// ratings: stars per product over gRPC (shop.Ratings/GetRatings). RATINGS_FAIL=1, or the file
// .hexmesh/break-ratings beside mesh.yaml (RATINGS_BREAK_FILE) while it exists, makes every call
// fail with UNAVAILABLE, to watch the circuit breaker and fallback of the TrafficPolicy.
import { existsSync } from 'node:fs';
import { Ratings, grpc } from './ratings-proto.mjs';

const BREAK_FILE = process.env.RATINGS_BREAK_FILE ?? '.hexmesh/break-ratings';
const broken = () => process.env.RATINGS_FAIL === '1' || existsSync(BREAK_FILE);

const STARS = { 1: [5, 4, 5], 2: [3, 4], 3: [5] };
const server = new grpc.Server();
server.addService(Ratings.service, {
  GetRatings(call, cb) {
    if (broken()) return cb({ code: grpc.status.UNAVAILABLE, details: 'ratings is failing on purpose' });
    const id = call.request.product_id;
    cb(null, { product_id: id, stars: STARS[id] ?? [] });
  },
});
const port = Number(process.env.PORT ?? 9090);
server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (err) => {
  if (err) throw err;
  console.log(`ratings listening on 127.0.0.1:${port} (gRPC)`);
});
const stop = () => server.tryShutdown(() => process.exit(0));
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
