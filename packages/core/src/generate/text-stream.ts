/**
 * Incremental detokenization.
 *
 * Decoding tokens one by one is wrong for SentencePiece-style tokenizers: a lone '▁hello' decodes
 * to "hello" (the leading space is stripped) and a lone byte-fallback token such as <0xE6>
 * decodes to U+FFFD. So, as text-generation-inference's `decode_token` does, we keep two offsets
 * into a short window of ids: text up to `read` has been emitted, and the window starts at
 * `prefix`, one step further back, to give the decoder context. Each push decodes
 * window[prefix..read) and window[prefix..end) and emits the difference, unless the latter ends
 * with U+FFFD (a multi-byte character is still incomplete). The window only ever holds the last
 * step plus any pending tokens, so the work per token does not grow with the output length.
 */

/** What the stream needs from a tokenizer. */
export interface TokenDecoder {
  decode(ids: number[], opts?: { skipSpecialTokens?: boolean }): string;
}

export interface TokenTextStreamOptions {
  /** Drop special tokens such as </s> from the text (default true). */
  skipSpecialTokens?: boolean;
  /**
   * Ids that come right before the streamed ones (e.g. the prompt's last few tokens). They are
   * not emitted but let the first streamed token keep its leading space. Without them, the
   * streamed text equals `decode(streamedIds)`, whose first leading space is stripped.
   */
  contextIds?: readonly number[];
  /**
   * Emit anyway once this many tokens are pending behind an incomplete character, so invalid
   * byte sequences cannot stall the stream (default 8; a UTF-8 character spans at most 4 bytes).
   */
  maxPendingTokens?: number;
}

const REPLACEMENT = '\uFFFD';

export class TokenTextStream {
  private window: number[];
  private prefix = 0;
  private read: number;
  private readonly skipSpecialTokens: boolean;
  private readonly maxPending: number;

  constructor(
    private readonly tokenizer: TokenDecoder,
    opts: TokenTextStreamOptions = {},
  ) {
    this.skipSpecialTokens = opts.skipSpecialTokens ?? true;
    this.maxPending = opts.maxPendingTokens ?? 8;
    this.window = [...(opts.contextIds ?? [])];
    this.read = this.window.length;
  }

  /** Adds one token; returns the text it completes (often '', e.g. mid-character). */
  push(tokenId: number): string {
    this.window.push(tokenId);
    const prefixText = this.decode(this.prefix, this.read);
    const fullText = this.decode(this.prefix, this.window.length);
    const pending = this.window.length - this.read;
    if (fullText.endsWith(REPLACEMENT) && pending < this.maxPending) return '';
    // Move on: the next step decodes from here, with the just-read tokens as context.
    this.window = this.window.slice(this.read);
    this.prefix = 0;
    this.read = this.window.length;
    return fullText.length > prefixText.length ? fullText.slice(prefixText.length) : '';
  }

  /** Returns whatever is still held back (e.g. an incomplete character at the end). */
  flush(): string {
    if (this.read === this.window.length) return '';
    const prefixText = this.decode(this.prefix, this.read);
    const fullText = this.decode(this.prefix, this.window.length);
    this.window = this.window.slice(this.read);
    this.prefix = 0;
    this.read = this.window.length;
    return fullText.slice(prefixText.length);
  }

  private decode(from: number, to: number): string {
    if (to <= from) return '';
    return this.tokenizer.decode(this.window.slice(from, to), { skipSpecialTokens: this.skipSpecialTokens });
  }
}
