// The HTTP status of a failed @kubernetes/client-node call (ApiException.code), if any.
import { isRecord } from "../base/record.js";

export function apiStatusCode(e: unknown): number | undefined {
  if (!isRecord(e)) return undefined;
  const c = e.code ?? e.statusCode;
  return typeof c === "number" ? c : undefined;
}

/** One line for logs: the API server's own message when it sent a Status. */
export function apiErrorMessage(e: unknown): string {
  if (isRecord(e)) {
    const code = apiStatusCode(e);
    let body: unknown = e.body;
    if (typeof body === "string") {
      try {
        body = JSON.parse(body);
      } catch {
        // not JSON: keep the text
      }
    }
    const msg =
      isRecord(body) && typeof body.message === "string"
        ? body.message
        : typeof e.message === "string"
          ? e.message.split("\n")[0]!
          : String(e);
    return code !== undefined ? `${msg} (HTTP ${code})` : msg;
  }
  return String(e);
}
