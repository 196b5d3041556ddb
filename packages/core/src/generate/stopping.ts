/**
 * Stop strings over streamed text. Text that might be the start of a stop string is held back
 * until the next push decides it, so a caller never shows text that turns out to be part of a
 * stop string.
 */
export interface StopPushResult {
  /** Text that is now safe to show. */
  emit: string;
  /** True once a stop string was found; `emit` then ends right before it. */
  stopped: boolean;
}

export class StopStringMatcher {
  private readonly stops: readonly string[];
  private held = '';
  private done = false;

  constructor(stopStrings: readonly string[]) {
    for (const s of stopStrings) {
      if (typeof s !== 'string' || s.length === 0) {
        throw new RangeError(`stop strings must be non-empty strings, got ${JSON.stringify(s)}`);
      }
    }
    this.stops = [...stopStrings];
  }

  /** The stop string that matched, if any. */
  matched: string | null = null;

  get stopped(): boolean {
    return this.done;
  }

  push(text: string): StopPushResult {
    if (this.done) return { emit: '', stopped: true };
    const buf = this.held + text;

    // Earliest match wins; for matches at the same place, the longer stop string.
    let at = -1;
    let match = '';
    for (const s of this.stops) {
      const i = buf.indexOf(s);
      if (i !== -1 && (at === -1 || i < at || (i === at && s.length > match.length))) {
        at = i;
        match = s;
      }
    }
    if (at !== -1) {
      this.done = true;
      this.matched = match;
      this.held = '';
      return { emit: buf.slice(0, at), stopped: true };
    }

    const keep = this.longestStopPrefixSuffix(buf);
    this.held = buf.slice(buf.length - keep);
    return { emit: buf.slice(0, buf.length - keep), stopped: false };
  }

  /** Releases the text still held back (at the end of generation). */
  flush(): string {
    const rest = this.held;
    this.held = '';
    return rest;
  }

  // Length of the longest suffix of buf that is a proper prefix of some stop string.
  private longestStopPrefixSuffix(buf: string): number {
    let best = 0;
    for (const s of this.stops) {
      for (let len = Math.min(s.length - 1, buf.length); len > best; len--) {
        if (buf.endsWith(s.slice(0, len))) {
          best = len;
          break;
        }
      }
    }
    return best;
  }
}
