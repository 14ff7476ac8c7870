// What a pull may be admitted for, beyond the policies in use. A pull has no namespace, so
// the pull verifier asks "could some namespace on this node run this image?" — the same
// rules as the create-time gate, taken over every namespace (docs/pull-semantics.md):
//   - exempt images (policy.exemptImages): every namespace could run them;
//   - exempt namespaces run anything at create time, but at pull time they count only for
//     the images listed in policy.exemptNamespaceImages (else every pull would pass);
//   - a policy in use that allows the image (PullDecider);
//   - a namespace under an active break-glass could run an image its policy denies, so a
//     would-be denial is admitted and audited, naming that namespace. The create-time gate
//     still applies every other namespace's own policy: nobody else gains anything.
import type { Decision } from "./decision.js";
import { formatMessage } from "./decision.js";
import { ExemptImages } from "./exempt.js";

export interface ActiveBreakGlass {
  namespace: string;
  until: number;
  reason?: string;
}

export interface PullScopeOptions {
  exemptNamespaces: readonly string[];
  exemptNamespaceImages: readonly string[];
  /** Namespaces under a valid break-glass right now (from the policy source). */
  breakGlass?: (now: Date) => ActiveBreakGlass[];
}

export class PullScope {
  private readonly images: ExemptImages;

  constructor(private readonly o: PullScopeOptions) {
    // Without an exempt namespace nobody runs these images unchecked: they admit nothing.
    this.images = new ExemptImages(o.exemptNamespaces.length > 0 ? o.exemptNamespaceImages : []);
  }

  /** The exemptNamespaceImages pattern that admits this pull, if any. */
  exemptNamespaceImage(reference: string, digest: string): string | undefined {
    return this.images.match(reference, digest);
  }

  exemptNamespaceReason(pattern: string): string {
    return `image matches exemptNamespaceImages pattern "${pattern}": the exempt namespaces (${this.o.exemptNamespaces.join(", ")}) may run it; every other namespace is still checked at create time`;
  }

  /**
   * A denied pull turned into a break-glass admission when some namespace could run the
   * image under its break-glass; otherwise the decision unchanged.
   */
  applyBreakGlass(d: Decision, now: number): Decision {
    if (d.allowed || !this.o.breakGlass) return d;
    let active: ActiveBreakGlass[];
    try {
      active = this.o.breakGlass(new Date(now)).filter((b) => b.until > now);
    } catch {
      return d;
    }
    if (active.length === 0) return d;
    active.sort((a, b) => a.namespace.localeCompare(b.namespace));
    const until = Math.max(...active.map((b) => b.until));
    const names = active.map((b) => `"${b.namespace}"`).join(", ");
    const out: Decision = {
      ...d,
      allowed: true,
      kind: "break-glass",
      reason: `${d.reason}; admitted for namespace ${names} under break-glass (other namespaces are still denied at create time)`,
      breakGlassUntil: new Date(until).toISOString(),
      notes: [
        ...(d.notes ?? []),
        ...active.map(
          (b) =>
            `break-glass in namespace ${b.namespace} until ${new Date(b.until).toISOString()}${b.reason ? `: ${b.reason}` : ""}`,
        ),
      ],
    };
    out.message = formatMessage(out);
    return out;
  }
}

/** The scope the agent and the pull verifier's fallback build from the same configuration. */
export function pullScopeFor(
  policy: { exemptNamespaces: readonly string[]; exemptNamespaceImages: readonly string[] },
  selector: { activeBreakGlass?(now: Date): ActiveBreakGlass[] },
): PullScope {
  return new PullScope({
    exemptNamespaces: policy.exemptNamespaces,
    exemptNamespaceImages: policy.exemptNamespaceImages,
    breakGlass: selector.activeBreakGlass ? (now) => selector.activeBreakGlass!(now) : undefined,
  });
}
