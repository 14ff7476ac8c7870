// Trust stores as notation-go loads them for one trust policy: the named stores of one type,
// each certificate a CA or self-signed, tsa stores holding roots only. Parsed PEM is kept per
// store object, which lives as long as its compiled policy.
import { toEngineError } from "../errors.js";
import { splitStore } from "./policy.js";
import type { NotationTrustPolicy, NotationTrustStore, TrustStoreType } from "./types.js";
import { bytesEqual, type Cert, parsePemCerts } from "./x509.js";

const storeCertCache = new WeakMap<NotationTrustStore, Cert[]>();

function storeCerts(store: NotationTrustStore): Cert[] {
  let certs = storeCertCache.get(store);
  if (!certs) {
    certs = store.certificates.flatMap((pem) => parsePemCerts(pem));
    storeCertCache.set(store, certs);
  }
  return certs;
}

/**
 * Certificates of the policy's named stores of one type, loaded as notation-go loads them: a
 * named store that does not exist or holds no certificates, a certificate in it that is
 * neither a CA nor self-signed, or a non-root certificate in a tsa store makes the load fail
 * (a string saying why), and the caller applies the level's action for the check at hand.
 */
export function trustedCerts(
  policy: NotationTrustPolicy,
  stores: NotationTrustStore[],
  type: TrustStoreType,
): Cert[] | string {
  const out: Cert[] = [];
  const seen = new Set<string>();
  for (const ref of policy.trustStores ?? []) {
    if (seen.has(ref)) continue;
    seen.add(ref);
    const [t, name] = splitStore(ref, policy.name);
    if (t !== type) continue;
    const store = stores.find((s) => s.type === type && s.name === name);
    if (!store)
      return `the trust store "${name}" of type "${type}" named by trust policy "${policy.name}" does not exist`;
    let certs: Cert[];
    try {
      certs = storeCerts(store);
    } catch (e) {
      return `trust store "${ref}" cannot be read: ${toEngineError(e).message}`;
    }
    if (certs.length === 0)
      return `no x509 certificates were found in trust store "${name}" of type "${type}"`;
    for (const c of certs) {
      const selfSigned = (() => {
        try {
          return c.x509.verify(c.publicKey);
        } catch {
          return false;
        }
      })();
      if (!c.basicConstraints?.ca && !selfSigned)
        return `certificate "${c.subjectString}" in trust store "${ref}" is not a CA certificate or self-signed signing certificate`;
      if (type === "tsa" && !(selfSigned && bytesEqual(c.rawSubject, c.rawIssuer)))
        return `certificate "${c.subjectString}" in trust store "${ref}" is not a root CA certificate`;
    }
    out.push(...certs);
  }
  return out;
}
