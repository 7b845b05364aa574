/**
 * The command line both floor proxies share: `--listen PORT --next PORT [--tls-in c,k,ca]
 * [--tls-out c,k,ca]`, the PEM files read.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

export interface Pem {
  cert: Buffer;
  key: Buffer;
  ca: Buffer;
}

export interface FloorArgs {
  listen: number;
  next: number;
  /** Serve mutual TLS (the server side of the pair). */
  tlsIn?: Pem;
  /** Connect with mutual TLS (the client side), SNI "upstream". */
  tlsOut?: Pem;
  lean: boolean;
}

function pem(spec: string): Pem {
  const [cert, key, ca] = spec.split(',').map((f) => readFileSync(f));
  return { cert, key, ca };
}

export function floorArgs(): FloorArgs {
  const { values } = parseArgs({
    options: {
      listen: { type: 'string' },
      next: { type: 'string' },
      'tls-in': { type: 'string' },
      'tls-out': { type: 'string' },
      lean: { type: 'boolean', default: false },
    },
  });
  return {
    listen: Number(values.listen),
    next: Number(values.next),
    tlsIn: values['tls-in'] ? pem(values['tls-in']) : undefined,
    tlsOut: values['tls-out'] ? pem(values['tls-out']) : undefined,
    lean: values.lean,
  };
}
