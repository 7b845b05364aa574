/**
 * The mesh's certificate authority. Its state lives in the store (`/hexmesh/ca/state`), so
 * every control-plane replica signs with the same intermediate: the first replica creates
 * (or imports) it with a create-only write, the others read it. Root keys never enter the
 * store; they stay in `<data-dir>/ca/<id>/root.key` (0600) on the replica that made them,
 * because a root signs only intermediates. The intermediate key must be shared: it is
 * stored sealed, with the operator's secret when one is given, else with a random seal key
 * kept in `<dataDir>/ca-seal.key` (0600); as PEM only without either (docs/identity.md,
 * "Where the keys live"). A store holding a PEM key from an older version is sealed on start.
 *
 * Rotation: `startRotation` puts a new authority (root + intermediate) first in the list;
 * new certificates come from it at once, the bundle holds every root in the list, and
 * `finishRotation` drops the old ones once no live workload certificate chains to them.
 */
import { mkdir, writeFile, chmod } from 'node:fs/promises';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes, verify as verifySignature, webcrypto, X509Certificate as NodeCert } from 'node:crypto';
import * as x509 from './x509-lib.ts';
import { HexmeshError } from '../errors/hexmesh-error.ts';
import { StoreConflictError, type Store } from '../store/store.ts';
import { spiffeId as makeSpiffeId, parseSpiffeId, uriSans } from './identity-source.ts';
import { checkCsr } from './csr-policy.ts';
import { INSTANCE_ID, JoinTokens } from './join-tokens.ts';
import { controlPlaneSpiffeId } from './control-tls.ts';
import {
  readOrCreateSealKey,
  readSealKey,
  sealKey,
  sealKeyPath,
  unsealKey,
  type SealedKey,
} from './key-sealing.ts';
import {
  createIntermediateCert,
  createLeafCert,
  createRootCert,
  exportKeyPem,
  generateKeyPair,
  importPrivateKey,
  isSignedBy,
  parseCert,
  randomSerial,
  withNewline,
} from './x509.ts';

export const CA_KEYS = Object.freeze({
  state: '/hexmesh/ca/state',
  issued: '/hexmesh/identity/issued/',
});

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

export interface CaImport {
  readonly rootCertPem: string;
  /** Needed unless an intermediate (cert + key) is given: the CA then makes its own intermediate. */
  readonly rootKeyPem?: string;
  readonly intermediateCertPem?: string;
  readonly intermediateKeyPem?: string;
}

export interface CaOptions {
  /** Default `hexmesh.local`. */
  trustDomain?: string;
  /** Where root and intermediate files are written (`<dataDir>/ca/<id>/`); none: store only. */
  dataDir?: string;
  /** The operator's own root (and optionally intermediate) instead of generated ones. */
  import?: CaImport;
  /**
   * Seals the intermediate key in the store (AES-256-GCM); the same secret on every replica.
   * Absent: the seal key in `<dataDir>/ca-seal.key` (made on first use).
   */
  keySecret?: string;
  /**
   * Accept a platform's workload token in place of a join token: the identity it proves, or
   * undefined to refuse it (docs/kubernetes.md: ServiceAccount tokens by TokenReview).
   */
  platformToken?: (token: string) => Promise<{ namespace: string; serviceAccount: string } | undefined>;
  /** Root lifetime (default 10 years). */
  rootTtlMs?: number;
  /** Intermediate lifetime (default 1 year). */
  intermediateTtlMs?: number;
  /** Workload certificate lifetime (default 24 h). */
  leafTtlMs?: number;
  /**
   * Live certificates one identity may hold under distinct proxy ids (default 10,000): each
   * new proxy id is a record in the store until its certificate expires (see #makeRoomFor).
   */
  maxIssuedPerIdentity?: number;
  now?: () => number;
}

/** Default of {@link CaOptions.maxIssuedPerIdentity}. */
const MAX_ISSUED_PER_IDENTITY = 10_000;

/** One root and the intermediate it signed; `authorities[0]` of the state signs. */
export interface Authority {
  readonly id: string;
  readonly rootCertPem: string;
  readonly intermediateCertPem: string;
  readonly intermediateKey: SealedKey;
  readonly createdAt: string;
}

export interface CaState {
  readonly trustDomain: string;
  readonly authorities: readonly Authority[];
  readonly rotation?: { readonly startedAt: string; readonly from: readonly string[] };
}

/** An issued workload certificate, recorded per proxy (its latest one) for rotation and `hexmesh check`. */
export interface IssuedRecord {
  readonly proxyId: string;
  readonly spiffeId: string;
  readonly serial: string;
  readonly authority: string;
  readonly issuedAt: string;
  readonly notAfter: string;
}

/** Proof that the caller is the workload: a join token, or its current certificate (renewal). */
export interface SignRequest {
  readonly csr: string;
  readonly token?: string;
  /** Renewal: the current certificate (leaf first) and a signature over the CSR's DER by its key. */
  readonly renewal?: { readonly certificate: string; readonly signature: string };
  /** The proxy asking; its latest certificate is tracked under this id (default: the serial). */
  readonly proxyId?: string;
}

export interface Issued {
  /** Leaf then intermediate, PEM. */
  readonly certChainPem: string;
  readonly spiffeId: string;
  readonly serial: string;
  readonly notBefore: string;
  readonly notAfter: string;
  readonly authority: string;
}

export interface RotationStatus {
  readonly rotating: boolean;
  readonly startedAt?: string;
  readonly active: string;
  readonly authorities: readonly AuthorityInfo[];
  /** Live workload certificates issued by an authority other than the active one. */
  readonly pending: readonly IssuedRecord[];
}

export interface AuthorityInfo {
  readonly id: string;
  readonly active: boolean;
  readonly root: { subject: string; notAfter: string; fingerprint256: string };
  readonly intermediate: { subject: string; notAfter: string };
}

const denied = (message: string) => new HexmeshError('HEXMESH_ERR_DENIED', message);

/** What a proof grants: one identity, maybe one instance of it, and the join token behind it. */
interface Granted {
  readonly spiffeId: string;
  readonly instance?: string;
  readonly joinToken?: string;
  /** Proved by a platform token: renewals need a fresh one (see #renewalIdentity). */
  readonly platformToken?: boolean;
}

export class CertificateAuthority {
  readonly tokens: JoinTokens;
  readonly #store: Store;
  readonly #opts: CaOptions;
  readonly #now: () => number;
  #starting: Promise<void> | undefined;
  /** Decoded signing key of the active authority, keyed by the state's modRevision. */
  #signer: { rev: number; id: string; key: CryptoKey } | undefined;

  constructor(store: Store, opts: CaOptions = {}) {
    this.#store = store;
    this.#opts = opts;
    this.#now = opts.now ?? Date.now;
    this.tokens = new JoinTokens(store, this.#now);
  }

  get trustDomain(): string {
    return this.#opts.trustDomain ?? 'hexmesh.local';
  }

  get leafTtlMs(): number {
    return this.#opts.leafTtlMs ?? DAY;
  }

  /** Create or import the CA if the store has none, else check the store's matches the options. Idempotent. */
  start(): Promise<void> {
    this.#starting ??= this.#init().catch((e: unknown) => {
      this.#starting = undefined;
      throw e;
    });
    return this.#starting;
  }

  async #init(): Promise<void> {
    const existing = await this.#read();
    if (existing) {
      this.#checkExisting(existing.state);
      return this.#sealStored(existing);
    }
    const made = await this.#newAuthority(this.#opts.import);
    const state: CaState = { trustDomain: this.trustDomain, authorities: [made.authority] };
    try {
      await this.#store.put(CA_KEYS.state, JSON.stringify(state), { prevModRevision: 0 });
    } catch (e) {
      if (!(e instanceof StoreConflictError)) throw e;
      // Another replica created it first: use theirs (ours was never used).
      const theirs = await this.#read();
      if (theirs) return this.#checkExisting(theirs.state);
      throw e;
    }
    await this.#writeFiles(made);
  }

  #checkExisting(state: CaState): void {
    if (state.trustDomain !== this.trustDomain)
      throw new HexmeshError(
        'HEXMESH_ERR_CONFIG_INVALID',
        `the store's CA is for trust domain ${state.trustDomain}, not ${this.trustDomain} (--trust-domain)`,
      );
    const imp = this.#opts.import;
    if (imp) {
      const fp = parseCert(imp.rootCertPem).fingerprint256;
      if (!state.authorities.some((a) => new NodeCert(a.rootCertPem).fingerprint256 === fp))
        throw new HexmeshError(
          'HEXMESH_ERR_CONFIG_INVALID',
          'the store already holds a CA with another root than --ca-cert; drop the flag to keep the existing CA',
        );
    }
  }

  /**
   * The secret sealing intermediate keys: the operator's, else the data dir's seal key file
   * (made when `create`); undefined without either (kept as PEM).
   */
  #sealSecret(create: boolean): string | undefined {
    if (this.#opts.keySecret) return this.#opts.keySecret;
    const dir = this.#opts.dataDir;
    if (!dir) return undefined;
    if (!create) return readSealKey(dir);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    return readOrCreateSealKey(dir);
  }

  /**
   * On start over an existing CA: a key stored as PEM (an older version, or a CA made
   * without a secret) is sealed now; a sealed one must open with our secret, so a replica
   * with the wrong one fails at start rather than at its first signature.
   */
  async #sealStored({ state, rev }: { state: CaState; rev: number }): Promise<void> {
    const plain = state.authorities.some((a) => a.intermediateKey.alg === 'pem');
    const secret = this.#sealSecret(plain);
    for (const a of state.authorities)
      if (a.intermediateKey.alg !== 'pem') {
        if (!secret && this.#opts.dataDir)
          throw new HexmeshError(
            'HEXMESH_ERR_CONFIG_INVALID',
            `the CA key in the store is sealed and there is no ${sealKeyPath(this.#opts.dataDir)}: ` +
              'copy it from the replica that created the CA (or start every replica with the same --ca-key-secret-file)',
          );
        unsealKey(a.intermediateKey, secret);
      }
    if (!plain || !secret) return;
    const next: CaState = {
      ...state,
      authorities: state.authorities.map((a) =>
        a.intermediateKey.alg === 'pem'
          ? { ...a, intermediateKey: sealKey(unsealKey(a.intermediateKey, undefined), secret) }
          : a,
      ),
    };
    try {
      await this.#store.put(CA_KEYS.state, JSON.stringify(next), { prevModRevision: rev });
    } catch (e) {
      // Another replica changed the state first (and sealed it, or rotated): re-check theirs.
      if (!(e instanceof StoreConflictError)) throw e;
      const theirs = await this.#read();
      if (theirs) return this.#sealStored(theirs);
    }
  }

  async #read(): Promise<{ state: CaState; rev: number } | undefined> {
    const kv = await this.#store.get(CA_KEYS.state);
    return kv ? { state: JSON.parse(kv.value) as CaState, rev: kv.modRevision } : undefined;
  }

  async #state(): Promise<{ state: CaState; rev: number }> {
    await this.start();
    const s = await this.#read();
    if (!s) throw new HexmeshError('HEXMESH_ERR_INTERNAL', 'the CA state disappeared from the store');
    return s;
  }

  /** A new authority: generated, or built from the operator's files. Private keys stay in memory until written. */
  async #newAuthority(
    imp: CaImport | undefined,
  ): Promise<{ authority: Authority; rootKeyPem?: string; intermediateKeyPem: string }> {
    const now = this.#now();
    const id = `${new Date(now).toISOString().slice(0, 10).replace(/-/g, '')}-${randomBytes(3).toString('hex')}`;
    const td = this.trustDomain;
    let rootCertPem: string;
    let rootKey: CryptoKey | undefined;
    let rootKeyPem: string | undefined;
    if (imp) {
      const root = parseCert(imp.rootCertPem);
      if (!root.ca) throw new HexmeshError('HEXMESH_ERR_CONFIG_INVALID', '--ca-cert is not a CA certificate');
      rootCertPem = withNewline(root.toString());
      if (imp.rootKeyPem) {
        rootKey = await importPrivateKey(imp.rootKeyPem, '--ca-key');
        rootKeyPem = imp.rootKeyPem;
      }
    } else {
      const keys = await generateKeyPair(true);
      rootCertPem = await createRootCert({
        commonName: `hexmesh root ${id}`,
        trustDomain: td,
        notBefore: new Date(now - 60_000),
        notAfter: new Date(now + (this.#opts.rootTtlMs ?? 10 * 365 * DAY)),
        keys,
      });
      rootKey = keys.privateKey;
      rootKeyPem = await exportKeyPem(keys.privateKey);
    }
    let intermediateCertPem: string;
    let intermediateKeyPem: string;
    if (imp?.intermediateCertPem && imp.intermediateKeyPem) {
      const inter = parseCert(imp.intermediateCertPem);
      if (!inter.ca || !isSignedBy(inter, parseCert(rootCertPem)))
        throw new HexmeshError(
          'HEXMESH_ERR_CONFIG_INVALID',
          '--ca-intermediate-cert must be a CA certificate signed by --ca-cert',
        );
      const key = await importPrivateKey(imp.intermediateKeyPem, '--ca-intermediate-key');
      if (!(await keyMatches(key, inter)))
        throw new HexmeshError(
          'HEXMESH_ERR_CONFIG_INVALID',
          '--ca-intermediate-key does not belong to --ca-intermediate-cert',
        );
      intermediateCertPem = withNewline(inter.toString());
      intermediateKeyPem = imp.intermediateKeyPem;
    } else {
      if (!rootKey)
        throw new HexmeshError(
          'HEXMESH_ERR_CONFIG_INVALID',
          'importing a CA needs --ca-key, or an intermediate (--ca-intermediate-cert and --ca-intermediate-key)',
        );
      if (imp && !(await keyMatches(rootKey, parseCert(rootCertPem))))
        throw new HexmeshError('HEXMESH_ERR_CONFIG_INVALID', '--ca-key does not belong to --ca-cert');
      const keys = await generateKeyPair(true);
      const rootNotAfter = Date.parse(parseCert(rootCertPem).validTo);
      intermediateCertPem = await createIntermediateCert(
        {
          commonName: `hexmesh intermediate ${id}`,
          trustDomain: td,
          notBefore: new Date(now - 60_000),
          notAfter: new Date(Math.min(rootNotAfter, now + (this.#opts.intermediateTtlMs ?? 365 * DAY))),
          keys,
        },
        { certPem: rootCertPem, key: rootKey },
      );
      intermediateKeyPem = await exportKeyPem(keys.privateKey);
    }
    return {
      authority: {
        id,
        rootCertPem,
        intermediateCertPem,
        intermediateKey: sealKey(intermediateKeyPem, this.#sealSecret(true)),
        createdAt: new Date(now).toISOString(),
      },
      rootKeyPem,
      intermediateKeyPem,
    };
  }

  /** `<dataDir>/ca/<id>/`: directory 0700, keys 0600 (owner only), certificates 0644. */
  async #writeFiles(made: { authority: Authority; rootKeyPem?: string; intermediateKeyPem: string }) {
    if (!this.#opts.dataDir) return;
    const ca = join(this.#opts.dataDir, 'ca');
    const dir = join(ca, made.authority.id);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await chmod(ca, 0o700);
    await chmod(dir, 0o700);
    const files: [string, string, number][] = [
      ['root.pem', made.authority.rootCertPem, 0o644],
      ['intermediate.pem', made.authority.intermediateCertPem, 0o644],
      ['intermediate.key', made.intermediateKeyPem, 0o600],
    ];
    if (made.rootKeyPem) files.push(['root.key', made.rootKeyPem, 0o600]);
    for (const [name, text, mode] of files) {
      // `mode` applies only on creation; chmod covers a file left by an earlier run.
      await writeFile(join(dir, name), text, { mode });
      await chmod(join(dir, name), mode);
    }
  }

  /** Every trusted root, PEM concatenated (the active authority's first). */
  async bundle(): Promise<{
    pem: string;
    roots: string[];
    active: string;
    trustDomain: string;
    revision: number;
  }> {
    const { state, rev } = await this.#state();
    const roots = state.authorities.map((a) => a.rootCertPem);
    return {
      pem: roots.join(''),
      roots,
      active: state.authorities[0].id,
      trustDomain: state.trustDomain,
      revision: rev,
    };
  }

  async authorities(): Promise<{ trustDomain: string; authorities: AuthorityInfo[] }> {
    const { state } = await this.#state();
    return { trustDomain: state.trustDomain, authorities: state.authorities.map(describe) };
  }

  /**
   * Check the proof, the CSR and the identity it asks for, then issue a leaf from the active
   * authority. `caller`: the SPIFFE ID the API authenticated the caller as (mTLS, join token);
   * a proof granting another identity is then refused (a workload never gets another's).
   */
  async sign(req: SignRequest, caller?: { spiffeId: string; instance?: string }): Promise<Issued> {
    const { state, rev } = await this.#state();
    const csr = await checkCsr(req.csr);
    const {
      spiffeId: granted,
      instance,
      joinToken,
      platformToken,
    } = await this.#grantedIdentity(req, csr.der, state);
    // Proxies take any certificate of this CA naming the control plane's identity as the
    // control plane (control-tls.ts): it comes only from issueServing, never from a proof.
    if (granted === controlPlaneSpiffeId(state.trustDomain))
      throw denied(
        `${granted} is the control plane's own identity: no workload is issued a certificate for it (revoke this credential)`,
      );
    if (caller !== undefined && caller.spiffeId !== granted)
      throw denied(`caller ${caller.spiffeId} may not get a certificate for ${granted}`);
    // Instances of one identity are kept apart too: a proof bound to one instance (its join
    // token, or a certificate got with it) gets certificates for that instance only.
    if (caller?.instance !== undefined && caller.instance !== instance)
      throw denied(
        `caller ${caller.spiffeId} is bound to instance ${caller.instance} and may not get a certificate for ${instance === undefined ? 'any instance' : `instance ${instance}`}`,
      );
    if (instance !== undefined && req.proxyId !== undefined && req.proxyId !== instance)
      throw denied(
        `the ${req.token ? 'join token' : 'current certificate'} is bound to instance ${instance}, not ${req.proxyId}`,
      );
    if (csr.requestedId !== undefined && csr.requestedId !== granted)
      throw denied(
        `CSR asks for ${csr.requestedId} but the ${req.token ? 'join token' : 'current certificate'} grants ${granted}`,
      );
    const now = this.#now();
    await this.#makeRoomFor(granted, req.proxyId ?? instance, now);
    const active = state.authorities[0];
    const key = await this.#signingKey(active, rev);
    const inter = new NodeCert(active.intermediateCertPem);
    const notAfter = Math.min(now + this.leafTtlMs, Date.parse(inter.validTo));
    if (notAfter <= now)
      throw new HexmeshError('HEXMESH_ERR_INTERNAL', `intermediate ${active.id} has expired`);
    const serial = randomSerial();
    // Backdated a little, for peers whose clocks run behind (as SPIRE does).
    const backdate = Math.min(60_000, this.leafTtlMs / 10);
    const notBefore = new Date(Math.max(now - backdate, Date.parse(inter.validFrom)));
    const leaf = await createLeafCert(
      {
        spiffeId: granted,
        ...(instance !== undefined && { instance }),
        ...(joinToken !== undefined && { joinToken }),
        ...(platformToken && { platformToken }),
        publicKey: csr.publicKey,
        serial,
        notBefore,
        notAfter: new Date(notAfter),
      },
      { certPem: active.intermediateCertPem, key },
    );
    const issued: Issued = {
      certChainPem: leaf + active.intermediateCertPem,
      spiffeId: granted,
      serial,
      notBefore: notBefore.toISOString(),
      notAfter: new Date(notAfter).toISOString(),
      authority: active.id,
    };
    const record: IssuedRecord = {
      proxyId: req.proxyId ?? instance ?? serial,
      spiffeId: granted,
      serial,
      authority: active.id,
      issuedAt: new Date(now).toISOString(),
      notAfter: issued.notAfter,
    };
    // Keyed under the identity issued: a proxy id names a proxy within its identity only, so
    // one workload cannot overwrite another's record (rotation would think it renewed).
    await this.#store.put(issuedKey(granted, record.proxyId), JSON.stringify(record));
    return issued;
  }

  /**
   * The control plane's own serving certificate (docs/api-security.md): a fresh key made
   * here, the control plane's SPIFFE ID plus the DNS names and IP addresses people and
   * proxies reach it by, from the active authority. Not recorded as an issued workload
   * certificate: the control plane re-issues it itself when its authority is rotated out.
   */
  async issueServing(req: {
    dnsNames?: readonly string[];
    ipAddresses?: readonly string[];
    ttlMs?: number;
  }): Promise<Issued & { keyPem: string }> {
    const { state, rev } = await this.#state();
    const active = state.authorities[0];
    const key = await this.#signingKey(active, rev);
    const inter = new NodeCert(active.intermediateCertPem);
    const now = this.#now();
    const ttl = req.ttlMs ?? this.leafTtlMs;
    const notAfter = Math.min(now + ttl, Date.parse(inter.validTo));
    if (notAfter <= now)
      throw new HexmeshError('HEXMESH_ERR_INTERNAL', `intermediate ${active.id} has expired`);
    const keys = await generateKeyPair(true);
    const serial = randomSerial();
    const notBefore = new Date(Math.max(now - Math.min(60_000, ttl / 10), Date.parse(inter.validFrom)));
    const id = controlPlaneSpiffeId(state.trustDomain);
    const leaf = await createLeafCert(
      {
        spiffeId: id,
        publicKey: await x509.PublicKey.create(keys.publicKey),
        serial,
        notBefore,
        notAfter: new Date(notAfter),
        dnsNames: req.dnsNames ?? [],
        ipAddresses: req.ipAddresses ?? [],
      },
      { certPem: active.intermediateCertPem, key },
    );
    return {
      certChainPem: leaf + active.intermediateCertPem,
      keyPem: await exportKeyPem(keys.privateKey),
      spiffeId: id,
      serial,
      notBefore: notBefore.toISOString(),
      notAfter: new Date(notAfter).toISOString(),
      authority: active.id,
    };
  }

  /**
   * The identity (and the one instance of it, if bound) the request's proof grants, and the
   * join token the certificate descends from (none for a platform token).
   */
  async #grantedIdentity(req: SignRequest, csrDer: Buffer, state: CaState): Promise<Granted> {
    if (req.token) {
      // Not one of our join tokens (`hxjt.…`): a platform token, when one is trusted
      // (Kubernetes: a projected ServiceAccount token, checked by TokenReview).
      if (this.#opts.platformToken && !req.token.startsWith('hxjt.')) {
        const who = await this.#opts.platformToken(req.token);
        if (!who)
          throw new HexmeshError('HEXMESH_ERR_UNAUTHENTICATED', 'the platform token was not accepted');
        return {
          spiffeId: makeSpiffeId(state.trustDomain, who.namespace, who.serviceAccount),
          platformToken: true,
        };
      }
      const t = await this.tokens.verify(req.token);
      return {
        spiffeId: makeSpiffeId(state.trustDomain, t.namespace, t.serviceAccount),
        ...(t.instance !== undefined && { instance: t.instance }),
        joinToken: t.id,
      };
    }
    if (req.renewal) return this.#renewalIdentity(csrDer, req.renewal, state);
    throw new HexmeshError(
      'HEXMESH_ERR_UNAUTHENTICATED',
      'a join token (token) or the current certificate (renewal) is required to get a certificate',
    );
  }

  /**
   * Renewal: the current certificate must come from one of our intermediates, be valid now,
   * have signed the CSR (`csrDer`, the bytes checkCsr read), and not descend from a join
   * token that was revoked since.
   */
  async #renewalIdentity(
    csrDer: Buffer,
    renewal: { certificate: string; signature: string },
    state: CaState,
  ): Promise<Granted> {
    const leaf = parseCert(renewal.certificate);
    const now = this.#now();
    if (Date.parse(leaf.validTo) <= now || Date.parse(leaf.validFrom) > now)
      throw new HexmeshError(
        'HEXMESH_ERR_UNAUTHENTICATED',
        'renewal refused: the current certificate is not valid now',
      );
    const ours = state.authorities.some((a) => isSignedBy(leaf, new NodeCert(a.intermediateCertPem)));
    if (!ours || leaf.ca)
      throw new HexmeshError(
        'HEXMESH_ERR_UNAUTHENTICATED',
        'renewal refused: the certificate was not issued by this CA',
      );
    let ok: boolean;
    try {
      ok = verifySignature('sha256', csrDer, leaf.publicKey, Buffer.from(renewal.signature, 'base64'));
    } catch {
      ok = false; // a malformed signature is a wrong one
    }
    if (!ok)
      throw new HexmeshError(
        'HEXMESH_ERR_UNAUTHENTICATED',
        "renewal refused: the signature over the CSR does not verify with the certificate's key",
      );
    const uris = uriSans(leaf.subjectAltName);
    // A certificate naming two identities proves neither: the first one used to be taken
    // (a renewal with [admin, web] was issued for admin).
    if (uris.length > 1)
      throw new HexmeshError(
        'HEXMESH_ERR_BAD_REQUEST',
        `renewal refused: the current certificate carries ${uris.length} URI SANs; a workload certificate has exactly one`,
      );
    const id = uris[0];
    const parsed = id ? parseSpiffeId(id) : undefined;
    if (!id || !parsed || parsed.trustDomain !== state.trustDomain)
      throw new HexmeshError(
        'HEXMESH_ERR_UNAUTHENTICATED',
        'renewal refused: the certificate carries no SPIFFE ID of this trust domain',
      );
    // A platform token's certificate is not its own proof: the token is asked again (a
    // TokenReview), so a deleted Pod or ServiceAccount ends the line at the next renewal, as a
    // revoked join token does below. The proxy then sends its token file's current token.
    if (/^OU=platform-token$/m.test(leaf.subject))
      throw new HexmeshError(
        'HEXMESH_ERR_UNAUTHENTICATED',
        'renewal refused: a certificate got with a platform (Kubernetes ServiceAccount) token renews with a fresh token, which proves the Pod still stands',
      );
    // The instance it was bound to carries over: a renewal never widens or moves it.
    const instance = instanceOfSubject(leaf.subject);
    // So does the join token it descends from, and revoking that token ends the line: without
    // this a certificate got once renewed itself forever, whatever was revoked. The token may
    // have expired (it only has to last until the first certificate); it must not be gone.
    const joinToken = joinTokenOfSubject(leaf.subject);
    if (joinToken !== undefined && !(await this.tokens.exists(joinToken)))
      throw new HexmeshError(
        'HEXMESH_ERR_UNAUTHENTICATED',
        `renewal refused: the certificate descends from join token ${joinToken}, which was revoked; get a new join token`,
      );
    return {
      spiffeId: id,
      ...(instance !== undefined && { instance }),
      ...(joinToken !== undefined && { joinToken }),
    };
  }

  async #signingKey(a: Authority, rev: number): Promise<CryptoKey> {
    if (this.#signer?.rev === rev && this.#signer.id === a.id) return this.#signer.key;
    const key = await importPrivateKey(
      unsealKey(a.intermediateKey, this.#sealSecret(false)),
      'intermediate key',
    );
    this.#signer = { rev, id: a.id, key };
    return key;
  }

  /**
   * Refuse a certificate that would add a record past the identity's cap. A workload holding
   * a valid proof could otherwise mint certificates under ever-new proxy ids (or none: each
   * serial is then its own record) and grow the store by one record per request until they
   * expire, a day later. A proxy id that already has its record (a renewal) always passes;
   * at the cap the identity's expired records are dropped first. The cap bounds the store
   * per identity, and only that identity's new proxies wait (they retry with backoff).
   */
  async #makeRoomFor(spiffeId: string, proxyId: string | undefined, now: number): Promise<void> {
    const cap = this.#opts.maxIssuedPerIdentity ?? MAX_ISSUED_PER_IDENTITY;
    const r = await this.#store.range(issuedKey(spiffeId, ''), { limit: cap + 1 });
    if (r.kvs.length < cap) return;
    if (proxyId !== undefined && (await this.#store.get(issuedKey(spiffeId, proxyId))) !== undefined) return;
    let live = 0;
    for (const kv of r.kvs) {
      const rec = JSON.parse(kv.value) as IssuedRecord;
      if (Date.parse(rec.notAfter) > now) live++;
      else await this.#store.delete(kv.key, { prevModRevision: kv.modRevision }).catch(() => undefined);
    }
    if (live < cap) return;
    throw new HexmeshError(
      'HEXMESH_ERR_RATE_LIMITED',
      `${spiffeId} holds ${live} live certificates under distinct proxy ids, the cap ` +
        `(hexmesh control --max-certs-per-identity): a new proxy id gets one when one of them ` +
        'expires; a proxy renewing under its own id is not affected',
    );
  }

  /** Live issued certificates (expired records are removed on the way). */
  async issued(): Promise<IssuedRecord[]> {
    const r = await this.#store.range(CA_KEYS.issued);
    const now = this.#now();
    const live: IssuedRecord[] = [];
    for (const kv of r.kvs) {
      const rec = JSON.parse(kv.value) as IssuedRecord;
      if (Date.parse(rec.notAfter) > now) live.push(rec);
      else await this.#store.delete(kv.key, { prevModRevision: kv.modRevision }).catch(() => undefined);
    }
    return live;
  }

  /** Add a new root + intermediate beside the current ones; it signs from now on. */
  async startRotation(): Promise<RotationStatus> {
    const { state, rev } = await this.#state();
    if (state.rotation)
      throw new HexmeshError(
        'HEXMESH_ERR_CONFLICT',
        `a rotation started at ${state.rotation.startedAt} is in progress: finish it first (hexmesh identity rotate finish)`,
      );
    const made = await this.#newAuthority(undefined);
    const next: CaState = {
      trustDomain: state.trustDomain,
      authorities: [made.authority, ...state.authorities],
      rotation: { startedAt: new Date(this.#now()).toISOString(), from: state.authorities.map((a) => a.id) },
    };
    await this.#store.put(CA_KEYS.state, JSON.stringify(next), { prevModRevision: rev });
    await this.#writeFiles(made);
    return this.rotationStatus();
  }

  async rotationStatus(): Promise<RotationStatus> {
    const { state } = await this.#state();
    const active = state.authorities[0].id;
    const pending = (await this.issued()).filter((r) => r.authority !== active);
    return {
      rotating: state.rotation !== undefined,
      ...(state.rotation ? { startedAt: state.rotation.startedAt } : {}),
      active,
      authorities: state.authorities.map(describe),
      pending,
    };
  }

  /** Remove the old roots; refused while live workload certificates chain to them, unless `force`. */
  async finishRotation(force = false): Promise<RotationStatus> {
    const { state, rev } = await this.#state();
    if (!state.rotation)
      throw new HexmeshError(
        'HEXMESH_ERR_CONFLICT',
        'no rotation in progress (hexmesh identity rotate start)',
      );
    const status = await this.rotationStatus();
    if (status.pending.length && !force)
      throw new HexmeshError(
        'HEXMESH_ERR_CONFLICT',
        `${status.pending.length} live workload certificate(s) still chain to the old root (${status.pending
          .slice(0, 5)
          .map((r) => r.proxyId)
          .join(', ')}${status.pending.length > 5 ? ', ...' : ''}); wait for their renewal or use --force`,
      );
    const next: CaState = { trustDomain: state.trustDomain, authorities: [state.authorities[0]] };
    await this.#store.put(CA_KEYS.state, JSON.stringify(next), { prevModRevision: rev });
    return this.rotationStatus();
  }
}

/** The instance a workload certificate is bound to: its subject CN (see createLeafCert). */
export function instanceOfSubject(subject: string): string | undefined {
  const cn = /^CN=(.+)$/m.exec(subject)?.[1];
  return cn !== undefined && INSTANCE_ID.test(cn) ? cn : undefined;
}

/** The join token a workload certificate descends from: its subject `OU=join-token <id>` (see createLeafCert). */
export function joinTokenOfSubject(subject: string): string | undefined {
  return /^OU=join-token ([0-9a-f]{16})$/m.exec(subject)?.[1];
}

/** Where an issued record lives: under its SPIFFE ID, then the proxy id. */
function issuedKey(spiffeId: string, proxyId: string): string {
  return `${CA_KEYS.issued}${encodeURIComponent(spiffeId)}/${encodeURIComponent(proxyId)}`;
}

function describe(a: Authority, i: number): AuthorityInfo {
  const root = new NodeCert(a.rootCertPem);
  const inter = new NodeCert(a.intermediateCertPem);
  return {
    id: a.id,
    active: i === 0,
    root: {
      subject: root.subject.replace(/\n/g, ', '),
      notAfter: new Date(root.validTo).toISOString(),
      fingerprint256: root.fingerprint256,
    },
    intermediate: {
      subject: inter.subject.replace(/\n/g, ', '),
      notAfter: new Date(inter.validTo).toISOString(),
    },
  };
}

/** True if `key` is the private half of `cert`'s public key (sign and verify a nonce). */
async function keyMatches(key: CryptoKey, cert: NodeCert): Promise<boolean> {
  const nonce = randomBytes(32);
  const ec = key.algorithm.name === 'ECDSA';
  const sig = Buffer.from(
    await webcrypto.subtle.sign(
      ec ? { name: 'ECDSA', hash: 'SHA-256' } : { name: key.algorithm.name },
      key,
      nonce,
    ),
  );
  // WebCrypto's ECDSA signatures are r||s (IEEE P1363), not DER.
  return verifySignature(
    'sha256',
    nonce,
    ec ? { key: cert.publicKey, dsaEncoding: 'ieee-p1363' } : cert.publicKey,
    sig,
  );
}
