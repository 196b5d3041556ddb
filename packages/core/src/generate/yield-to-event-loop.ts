/**
 * One turn of the event loop, without a timer's clamp (setTimeout(0) waits 1 ms in Node and 4 ms
 * in nested browser timers). The decode loop awaits it between steps so that an AbortSignal fired
 * by a timer (or a Ctrl-C handler, or an HTTP disconnect) is seen within one step.
 *
 * Node: `setImmediate` (a global, no `node:` import), which runs after timers and I/O. A
 * MessageChannel does not do there: Node delivers up to 1000 queued port messages in one callback,
 * messages posted meanwhile included, so timers would wait 1000 steps. Browsers and workers: a
 * message posted to oneself, which is one task per message.
 */

// The web MessagePort, as much of it as this needs.
interface Port {
  onmessage: (() => void) | null;
  postMessage(value: unknown): void;
}

const immediate = (globalThis as { setImmediate?: (fn: () => void) => unknown }).setImmediate;
let channel: { port1: Port; port2: Port } | null = null;
const waiting: (() => void)[] = [];

export function yieldToEventLoop(): Promise<void> {
  if (immediate) return new Promise((resolve) => void immediate(resolve));
  if (typeof MessageChannel === 'undefined') return new Promise((resolve) => setTimeout(resolve, 0));
  if (!channel) {
    const ch = new MessageChannel() as unknown as { port1: Port; port2: Port };
    ch.port1.onmessage = () => waiting.shift()?.();
    channel = ch;
  }
  const ch = channel;
  return new Promise((resolve) => {
    waiting.push(resolve);
    ch.port2.postMessage(null);
  });
}
