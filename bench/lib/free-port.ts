// One port picker for the product, the tests and the benchmarks (src/runtime/ports.ts).
export { freePort } from '../../src/runtime/ports.ts';
