import { describe, expect, it } from 'vitest';
import { StopStringMatcher } from './stopping.js';

function run(m: StopStringMatcher, pieces: string[]) {
  let out = '';
  let stoppedAt = -1;
  pieces.forEach((p, i) => {
    const r = m.push(p);
    out += r.emit;
    if (r.stopped && stoppedAt === -1) stoppedAt = i;
  });
  return { out, stoppedAt };
}

describe('StopStringMatcher', () => {
  it('finds a stop string split across many pushes and emits exactly the text before it', () => {
    const m = new StopStringMatcher(['<|im_end|>']);
    const { out, stoppedAt } = run(m, ['Hello', ' there<', '|im', '_', 'end', '|>', 'after']);
    expect(out).toBe('Hello there');
    expect(stoppedAt).toBe(5);
    expect(m.stopped).toBe(true);
    expect(m.matched).toBe('<|im_end|>');
    expect(m.push('more')).toEqual({ emit: '', stopped: true });
    expect(m.flush()).toBe('');
  });

  it('holds back a possible prefix and releases it when it is not a stop', () => {
    const m = new StopStringMatcher(['STOP']);
    expect(m.push('abc ST')).toEqual({ emit: 'abc ', stopped: false });
    expect(m.push('O')).toEqual({ emit: '', stopped: false });
    expect(m.push('P')).toEqual({ emit: '', stopped: true });

    const m2 = new StopStringMatcher(['STOP']);
    expect(m2.push('abc STO')).toEqual({ emit: 'abc ', stopped: false });
    expect(m2.push('NE')).toEqual({ emit: 'STONE', stopped: false });
    expect(m2.push('ST')).toEqual({ emit: '', stopped: false });
    expect(m2.flush()).toBe('ST');
    expect(m2.flush()).toBe('');
  });

  it('handles overlapping prefixes (a retry of the stop string inside a partial match)', () => {
    const m = new StopStringMatcher(['aab']);
    const { out, stoppedAt } = run(m, ['x', 'a', 'a', 'a', 'b', 'y']);
    expect(out).toBe('xa');
    expect(stoppedAt).toBe(4);
  });

  it('with several stop strings, the earliest match wins, stop inside a single push', () => {
    const m = new StopStringMatcher(['\n\n', 'User:', 'Use']);
    expect(m.push('one\ntwo User: three\n\n')).toEqual({ emit: 'one\ntwo ', stopped: true });
    expect(m.matched).toBe('User:');
  });

  it('gives the same result however the text is split (random splits)', () => {
    const stops = ['</answer>', '###', 'END'];
    const text = 'The #answer# is <b>42</b> and E N D, <</answer';
    const target = 'The #answer# is <b>42</b> and E N D, <';
    for (let trial = 0; trial < 50; trial++) {
      const full = text + '>' + ' tail';
      const pieces: string[] = [];
      for (let i = 0; i < full.length; ) {
        const len = 1 + Math.floor(Math.random() * 5);
        pieces.push(full.slice(i, i + len));
        i += len;
      }
      const m = new StopStringMatcher(stops);
      const { out } = run(m, pieces);
      expect(out + m.flush()).toBe(target);
    }
  });

  it('with no match, emitted text plus flush equals the input', () => {
    const m = new StopStringMatcher(['zzz']);
    const { out, stoppedAt } = run(m, ['abc z', 'z', 'y z', 'z']);
    expect(stoppedAt).toBe(-1);
    expect(out + m.flush()).toBe('abc zzy zz');
  });

  it('rejects empty stop strings', () => {
    expect(() => new StopStringMatcher(['ok', ''])).toThrow(/non-empty/);
  });
});
