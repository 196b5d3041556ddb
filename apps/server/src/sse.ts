/** Server-sent events in the framing OpenAI's API uses: `data: <json>\n\n`, then `data: [DONE]`. */
import type { ServerResponse } from 'node:http';

export class SseWriter {
  /** True once the client stalled past the write timeout and the connection was closed. */
  stalled = false;

  /**
   * `writeTimeoutMs`: how long a write may wait for a client that does not read; then the
   * connection is closed, which aborts the generation (its `close` listener) and frees its slot.
   */
  constructor(
    private readonly res: ServerResponse,
    private readonly writeTimeoutMs: number,
  ) {}

  /** Sends the status line and headers; call once, before the first event. */
  open(): void {
    this.res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    this.res.flushHeaders();
  }

  get closed(): boolean {
    return this.res.destroyed || this.res.writableEnded;
  }

  /** Writes one event; waits while the socket's buffer is full (a slow reader slows generation). */
  async send(data: unknown): Promise<void> {
    await this.write(`data: ${JSON.stringify(data)}\n\n`);
  }

  async done(): Promise<void> {
    await this.write('data: [DONE]\n\n');
    this.end();
  }

  end(): void {
    if (!this.closed) this.res.end();
  }

  private write(text: string): Promise<void> {
    if (this.closed) return Promise.resolve();
    if (this.res.write(text)) return Promise.resolve();
    // Backpressure: the socket holds what it can; nothing more is generated until it drains.
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.res.off('drain', done);
        this.res.off('close', done);
        resolve();
      };
      const timer = setTimeout(() => {
        this.stalled = true;
        this.res.destroy();
        done();
      }, this.writeTimeoutMs);
      this.res.on('drain', done);
      this.res.on('close', done);
    });
  }
}
