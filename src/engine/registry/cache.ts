// Content-addressed cache of manifests and blobs. Keyed by digest only: content behind a
// digest is immutable, and every entry was verified against its digest before insertion.
import { LRUCache } from "lru-cache";

export class ContentCache {
  private readonly lru: LRUCache<string, Uint8Array> | undefined;

  constructor(maxBytes: number) {
    this.lru =
      maxBytes > 0
        ? new LRUCache<string, Uint8Array>({
            maxSize: maxBytes,
            // An entry bigger than the whole cache is simply not stored.
            maxEntrySize: maxBytes,
            sizeCalculation: (v) => Math.max(1, v.byteLength),
          })
        : undefined;
  }

  get(digest: string): Uint8Array | undefined {
    return this.lru?.get(digest);
  }

  set(digest: string, content: Uint8Array): void {
    this.lru?.set(digest, content);
  }

  get bytes(): number {
    return this.lru?.calculatedSize ?? 0;
  }
}
