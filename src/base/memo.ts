// Bounded memo for pure functions of a short string (image names, mostly): the create path
// asks the same few names again and again, and parsing them is most of what a cached
// decision costs. Cleared when full rather than tracking recency: the working set is small,
// and a clear only costs recomputation. Long keys are not kept, so no input can grow it
// beyond `max` entries of at most `maxKey` characters.
export class StringMemo<V> {
  private readonly m = new Map<string, V>();

  constructor(
    private readonly max = 4096,
    private readonly maxKey = 1024,
  ) {}

  has(key: string): boolean {
    return this.m.has(key);
  }

  get(key: string): V | undefined {
    return this.m.get(key);
  }

  /** Remembers `value` for `key` (unless the key is too long) and returns it. */
  set(key: string, value: V): V {
    if (key.length <= this.maxKey) {
      if (this.m.size >= this.max) this.m.clear();
      this.m.set(key, value);
    }
    return value;
  }
}

/** A StringMemo per object (a compiled policy, say), dropped with the object. */
export function memoPerObject<K extends object, V>(max?: number): (owner: K) => StringMemo<V> {
  const per = new WeakMap<K, StringMemo<V>>();
  return (owner) => {
    let m = per.get(owner);
    if (!m) {
      m = new StringMemo<V>(max);
      per.set(owner, m);
    }
    return m;
  };
}
