// The Ratings gRPC service definition, loaded from ratings.proto.
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

const def = protoLoader.loadSync(fileURLToPath(new URL('./ratings.proto', import.meta.url)), {
  keepCase: true,
  defaults: true,
});
export const Ratings = grpc.loadPackageDefinition(def).shop.Ratings;
export { grpc };
