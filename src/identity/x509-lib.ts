/**
 * @peculiar/x509, loaded the one way that works: its dependency injection (tsyringe) needs
 * the reflect-metadata polyfill evaluated first, and it signs through node's WebCrypto.
 * Every hexmesh module imports the library from here, never directly.
 */
import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

export * from '@peculiar/x509';
