import { describe, expect, it } from 'vitest';
import { Scheduler } from './scheduler.js';

describe('Scheduler', () => {
  it('runs up to `parallel` at once, queues up to `maxQueue`, refuses the rest with a 503', async () => {
    const changes: [number, number][] = [];
    const s = new Scheduler({ parallel: 2, maxQueue: 1, onChange: (r, w) => changes.push([r, w]) });
    const a = await s.acquire();
    const b = await s.acquire();
    let cGot = false;
    const c = s.acquire().then((release) => ((cGot = true), release));
    await expect(s.acquire()).rejects.toMatchObject({ status: 503, code: 'queue_full' });
    expect([s.running, s.waiting]).toEqual([2, 1]);
    a();
    a(); // releasing twice is harmless
    const release = await c;
    expect(cGot).toBe(true);
    expect([s.running, s.waiting]).toEqual([2, 0]);
    b();
    release();
    expect([s.running, s.waiting]).toEqual([0, 0]);
    expect(changes.at(-1)).toEqual([0, 0]);
  });

  it('serves waiters in arrival order', async () => {
    const s = new Scheduler({ parallel: 1, maxQueue: 3 });
    const first = await s.acquire();
    const order: number[] = [];
    const waiters = [1, 2, 3].map((i) => s.acquire().then((release) => (order.push(i), release())));
    first();
    await Promise.all(waiters);
    expect(order).toEqual([1, 2, 3]);
  });

  it('an aborted waiter leaves the queue and never takes a slot', async () => {
    const s = new Scheduler({ parallel: 1, maxQueue: 2 });
    const first = await s.acquire();
    const ac = new AbortController();
    const gone = s.acquire(ac.signal);
    const next = s.acquire();
    ac.abort(new Error('client left'));
    await expect(gone).rejects.toThrow('client left');
    expect(s.waiting).toBe(1);
    first();
    (await next)();
    expect([s.running, s.waiting]).toEqual([0, 0]);
  });

  it('after close, new requests get a 503 while queued ones still run; idle() waits for them', async () => {
    const s = new Scheduler({ parallel: 1, maxQueue: 2 });
    const first = await s.acquire();
    const queued = s.acquire();
    s.close();
    await expect(s.acquire()).rejects.toMatchObject({ status: 503, code: 'shutting_down' });
    let idle = false;
    const done = s.idle().then(() => (idle = true));
    first();
    expect(idle).toBe(false);
    (await queued)();
    await done;
    expect(idle).toBe(true);
  });

  it('rejects bad settings', () => {
    expect(() => new Scheduler({ parallel: 0 })).toThrow(RangeError);
    expect(() => new Scheduler({ maxQueue: -1 })).toThrow(RangeError);
  });
});
