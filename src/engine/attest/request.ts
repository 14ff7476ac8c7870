// The per-request condition variables: the image's name as this request used it and the
// namespace asking. They are never part of the cached evidence (digest × policy revision):
// one digest has many names and runs in many namespaces, so conditions that read them are
// evaluated per request (docs/policy-guide.md "Variables").
import { canonicalRegistry } from "../identity.js";
import { parseReference } from "../reference.js";

export interface ImageVars {
  digest: string;
  /** Canonical "registry/repository[:tag][@digest]" of the reference used. */
  reference: string;
  /** Canonical "registry/repository" (what spec.images patterns match). */
  name: string;
  /** Canonical registry host[:port] ("docker.io" for Docker Hub's spellings). */
  registry: string;
  /** Repository path inside the registry ("library/busybox"). */
  repository: string;
  /** The reference's tag, "" when it names the image by digest only. */
  tag: string;
}

export interface RequestVars {
  image: ImageVars;
  request: {
    /** The pod's namespace; "" when the request has none (a pull, `tollgate verify`). */
    namespace: string;
  };
}

/** The variables for a subject; its reference was validated by the engine already. */
export function requestVars(subject: { reference: string; digest: string; namespace?: string }): RequestVars {
  const ref = parseReference(subject.reference, { defaultTag: false });
  const registry = canonicalRegistry(ref.registry);
  const name = `${registry}/${ref.repository}`;
  const tag = ref.tag ?? "";
  return {
    image: {
      digest: subject.digest,
      reference: `${name}${tag ? `:${tag}` : ""}${ref.digest ? `@${ref.digest}` : ""}`,
      name,
      registry,
      repository: ref.repository,
      tag,
    },
    request: { namespace: subject.namespace ?? "" },
  };
}
