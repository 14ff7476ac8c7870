// A TUF repository made in the test with tuf-js's own metadata models (@tufjs/models):
// root / timestamp / snapshot / targets signed with fresh ed25519 and ECDSA P-256 keys,
// consistent snapshots, a `trusted_root.json` target, served over HTTP on 127.0.0.1 only.
// Operations a real repository goes through: publish a new target, rotate the root (the new
// root signed by the old and the new root keys), expire or tamper with what it serves.
import crypto from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";
import {
  Key,
  Metadata,
  MetaFile,
  Root,
  Signature,
  Snapshot,
  TargetFile,
  Targets,
  Timestamp,
} from "@tufjs/models";

interface TufKey {
  key: Key;
  sign(data: Buffer): Signature;
}

function newKey(kind: "ed25519" | "ecdsa"): TufKey {
  if (kind === "ed25519") {
    const { publicKey, privateKey } = crypto.generateKeyPairSync("ed25519");
    const raw = publicKey.export({ type: "spki", format: "der" }).subarray(-32);
    return withId(
      { keyType: "ed25519", scheme: "ed25519", keyVal: { public: raw.toString("hex") } },
      (keyID, data) => new Signature({ keyID, sig: crypto.sign(null, data, privateKey).toString("hex") }),
    );
  }
  const { publicKey, privateKey } = crypto.generateKeyPairSync("ec", { namedCurve: "P-256" });
  const pem = publicKey.export({ type: "spki", format: "pem" }).toString();
  return withId(
    { keyType: "ecdsa", scheme: "ecdsa-sha2-nistp256", keyVal: { public: pem } },
    (keyID, data) => new Signature({ keyID, sig: crypto.sign("sha256", data, privateKey).toString("hex") }),
  );
}

function withId(
  k: { keyType: string; scheme: string; keyVal: Record<string, string> },
  sign: (keyID: string, data: Buffer) => Signature,
): TufKey {
  const body = { keytype: k.keyType, scheme: k.scheme, keyval: k.keyVal };
  // The TUF key ID convention (sha256 of the key's JSON); tuf-js does not recompute it.
  const keyID = crypto.createHash("sha256").update(JSON.stringify(body)).digest("hex");
  return { key: new Key({ keyID, ...k }), sign: (d) => sign(keyID, d) };
}

const sha256 = (b: Buffer) => crypto.createHash("sha256").update(b).digest("hex");
const days = (n: number) => new Date(Date.now() + n * 86_400_000).toISOString().replace(/\.\d+Z$/, "Z");

export class LocalTufRepo {
  private rootKeys: TufKey[] = [newKey("ed25519")];
  private readonly roleKeys = {
    targets: newKey("ecdsa"),
    snapshot: newKey("ed25519"),
    timestamp: newKey("ecdsa"),
  };
  private rootVersion = 0;
  private version = 0;
  private targets: Record<string, Buffer> = {};
  /** URL path (without leading slash) → bytes served. */
  readonly files = new Map<string, Buffer>();
  /** URL paths requested, in order (to prove what a client asked for). */
  readonly requests: string[] = [];
  private server: http.Server | undefined;
  private port = 0;
  private firstRoot = "";

  constructor() {
    this.publishRoot([]);
    this.firstRoot = this.files.get("1.root.json")!.toString("utf8");
  }

  /** root.json version 1: what a client is configured with. */
  get initialRoot(): string {
    return this.firstRoot;
  }

  get url(): string {
    if (this.port === 0) throw new Error("repository never served");
    return `http://127.0.0.1:${this.port}`;
  }

  private signed<T extends Root | Targets | Snapshot | Timestamp>(signed: T, signers: TufKey[]): Buffer {
    const md = new Metadata<T>(signed);
    for (const s of signers) md.sign((d) => s.sign(d));
    return Buffer.from(JSON.stringify(md.toJSON()));
  }

  /** A new root version, signed by `extraSigners` (the previous root keys) and the current ones. */
  private publishRoot(extraSigners: TufKey[], expires = days(365)): void {
    this.rootVersion++;
    const keys: Record<string, unknown> = {};
    const add = (k: TufKey) => {
      keys[k.key.keyID] = k.key.toJSON();
      return k.key.keyID;
    };
    const role = (ks: TufKey[]) => ({ keyids: ks.map(add), threshold: ks.length });
    const root = Root.fromJSON({
      _type: "root",
      spec_version: "1.0.31",
      version: this.rootVersion,
      expires,
      consistent_snapshot: true,
      keys,
      roles: {
        root: role(this.rootKeys),
        targets: role([this.roleKeys.targets]),
        snapshot: role([this.roleKeys.snapshot]),
        timestamp: role([this.roleKeys.timestamp]),
      },
    } as never);
    const bytes = this.signed(root, [...extraSigners, ...this.rootKeys]);
    this.files.set(`${this.rootVersion}.root.json`, bytes);
  }

  /** Publishes targets → snapshot → timestamp for the current targets (one new version each). */
  publish(opts: { timestampExpires?: string; snapshotExpires?: string; targetsExpires?: string } = {}): void {
    this.version++;
    const v = this.version;
    const t = new Targets({ version: v, specVersion: "1.0.31", expires: opts.targetsExpires ?? days(90) });
    for (const [name, bytes] of Object.entries(this.targets)) {
      const hash = sha256(bytes);
      t.addTarget(new TargetFile({ path: name, length: bytes.length, hashes: { sha256: hash } }));
      this.files.set(`targets/${hash}.${name}`, bytes);
    }
    const targetsBytes = this.signed(t, [this.roleKeys.targets]);
    this.files.set(`${v}.targets.json`, targetsBytes);
    const snap = new Snapshot({
      version: v,
      specVersion: "1.0.31",
      expires: opts.snapshotExpires ?? days(30),
      meta: { "targets.json": new MetaFile({ version: v }) },
    });
    const snapBytes = this.signed(snap, [this.roleKeys.snapshot]);
    this.files.set(`${v}.snapshot.json`, snapBytes);
    const ts = new Timestamp({
      version: v,
      specVersion: "1.0.31",
      expires: opts.timestampExpires ?? days(7),
      snapshotMeta: new MetaFile({
        version: v,
        length: snapBytes.length,
        hashes: { sha256: sha256(snapBytes) },
      }),
    });
    this.files.set("timestamp.json", this.signed(ts, [this.roleKeys.timestamp]));
  }

  /** Sets the trusted_root.json target and publishes. */
  setTrustedRoot(trustedRoot: unknown): void {
    this.targets["trusted_root.json"] = Buffer.from(JSON.stringify(trustedRoot));
    this.publish();
  }

  /**
   * Root rotation: new root keys (and new targets/snapshot/timestamp keys); version N+1 is
   * signed by the old root keys and the new ones, as the TUF specification requires. Every
   * role's metadata is re-published with the new keys.
   */
  rotateRoot(): void {
    const old = this.rootKeys;
    this.rootKeys = [newKey("ecdsa"), newKey("ed25519")];
    this.roleKeys.targets = newKey("ed25519");
    this.roleKeys.snapshot = newKey("ecdsa");
    this.roleKeys.timestamp = newKey("ed25519");
    this.publishRoot(old);
    this.publish();
  }

  /** A root version N+1 signed only by keys the current root does not trust. */
  publishUntrustedRoot(): void {
    this.rootKeys = [newKey("ed25519")];
    this.publishRoot([]);
  }

  /** Replaces one served file's bytes (tampering in transit or on the mirror). */
  tamper(file: string, edit: (text: string) => string): void {
    const b = this.files.get(file);
    if (!b) throw new Error(`no file ${file}`);
    this.files.set(file, Buffer.from(edit(b.toString("utf8"))));
  }

  /** An ImagePolicy with one keyless cosign verifier whose trusted root comes from this repository. */
  keylessPolicy(o: {
    name: string;
    identities: Array<Record<string, string>>;
    images?: string[];
    refreshIntervalSeconds?: number;
  }): Record<string, unknown> {
    const tuf = {
      mirror: this.url,
      root: this.initialRoot,
      ...(o.refreshIntervalSeconds ? { refreshIntervalSeconds: o.refreshIntervalSeconds } : {}),
    };
    return {
      apiVersion: "tollgate.dev/v1alpha1",
      kind: "ImagePolicy",
      metadata: { name: o.name },
      spec: {
        ...(o.images ? { images: o.images } : {}),
        verifiers: [
          { name: "sigstore", cosign: { keyless: { trustedRoot: { tuf }, identities: o.identities } } },
        ],
      },
    };
  }

  async start(): Promise<string> {
    if (this.server) return this.url;
    const server = http.createServer((req, res) => {
      const p = decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname.replace(/^\/+/, ""));
      this.requests.push(p);
      const body = this.files.get(p);
      if (!body) {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, { "content-type": "application/json", "content-length": body.length }).end(body);
    });
    await new Promise<void>((resolve) => server.listen(this.port, "127.0.0.1", resolve));
    this.port = (server.address() as AddressInfo).port;
    this.server = server;
    return this.url;
  }

  /** Stops serving (the mirror becomes unreachable); start() serves again on the same port. */
  async stop(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }
}
