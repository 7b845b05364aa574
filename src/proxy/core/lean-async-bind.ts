/**
 * `AsyncResource.prototype.bind` without two `util.deprecate` wrappers per call.
 *
 * Node 20's HTTP/2 client binds every request it makes to a fresh AsyncResource
 * (`ClientHttp2Session.request`: `reqAsync.bind(requestOnConnect.bind(...))`), and Node 20's
 * `bind` defines the deprecated `asyncResource` accessor (DEP0172) on each bound function
 * with a new `util.deprecate` getter and setter: two closures whose prototypes are reset, per
 * request. In `--cpu-prof` of a sidecar relaying HTTP/2 (bench/profile-summary.ts), that was
 * 3–4 % of its busy time in `deprecate` and 1–2 % more in `bind` itself.
 *
 * Installed once when a sidecar starts; the bound function behaves as Node's does: it runs
 * `fn` in the resource's async scope with the same `this` rules, has `fn`'s length, and its
 * `asyncResource` accessor still works and still warns (DEP0172), through one shared pair.
 * Only on Node 20, whose `bind` is the one measured; other versions keep their own.
 */
import { AsyncResource } from 'node:async_hooks';
import { deprecate } from 'node:util';

const kResource = Symbol('hexmesh.asyncResource');
type Bound = ((...args: unknown[]) => unknown) & { [kResource]?: AsyncResource };

const MESSAGE = 'The asyncResource property on bound functions is deprecated';
const getResource = deprecate(
  function (this: Bound): AsyncResource | undefined {
    return this[kResource];
  },
  MESSAGE,
  'DEP0172',
);
const setResource = deprecate(
  function (this: Bound, value: AsyncResource): void {
    this[kResource] = value;
  },
  MESSAGE,
  'DEP0172',
);

type BindFn = (this: AsyncResource, fn: unknown, thisArg?: unknown) => unknown;
const original = AsyncResource.prototype.bind as BindFn;

/** `fn` run in `resource`'s async scope with the caller's `this` (Node's bind without thisArg). */
function inScope(resource: AsyncResource, fn: (...args: unknown[]) => unknown): Bound {
  return function (this: unknown, ...args: unknown[]): unknown {
    return resource.runInAsyncScope(fn, this, ...args);
  };
}

const leanBind: BindFn = function (fn, thisArg) {
  // Node's own checks and error for what is not a function.
  if (typeof fn !== 'function') return original.call(this, fn, thisArg);
  const call = fn as (...args: unknown[]) => unknown;
  const bound: Bound =
    thisArg === undefined ? inScope(this, call) : (this.runInAsyncScope.bind(this, call, thisArg) as Bound);
  Object.defineProperty(bound, 'length', { configurable: true, value: call.length });
  bound[kResource] = this;
  Object.defineProperty(bound, 'asyncResource', {
    configurable: true,
    enumerable: true,
    get: getResource,
    set: setResource,
  });
  return bound;
};

/** Install the lean `bind` (Node 20 only); true when installed. Idempotent. */
export function installLeanAsyncBind(): boolean {
  if (process.versions.node.split('.')[0] !== '20') return false;
  AsyncResource.prototype.bind = leanBind as typeof AsyncResource.prototype.bind;
  return true;
}
