import { describe, expect, it } from 'vitest';
import { isLoopbackHostHeader, isLoopbackName } from './host-check.js';

describe('loopback Host headers', () => {
  it('accepts localhost, 127.0.0.0/8 and ::1 in their spellings, with any port', () => {
    for (const h of ['localhost', 'LocalHost:8080', 'localhost.', 'api.localhost:1', '127.0.0.1', '127.255.0.9:80', '[::1]', '[::1]:65535', '[0:0:0:0:0:0:0:1]', '[::ffff:127.0.0.1]:8080']) {
      expect(isLoopbackHostHeader(h), h).toBe(true);
    }
  });

  it('refuses every other name and address', () => {
    for (const h of ['evil.example', 'localhost.evil.example', '127.0.0.1.nip.io', '128.0.0.1', '0.0.0.0', '10.0.0.1:8080', '[::]', '[::2]', '[fe80::1]', '[::ffff:10.0.0.1]', '', ':8080', '[::1']) {
      expect(isLoopbackHostHeader(h), h).toBe(false);
    }
  });

  it('bind addresses', () => {
    expect(isLoopbackName('127.0.0.1')).toBe(true);
    expect(isLoopbackName('::1')).toBe(true);
    expect(isLoopbackName('localhost')).toBe(true);
    expect(isLoopbackName('0.0.0.0')).toBe(false);
    expect(isLoopbackName('::')).toBe(false);
    expect(isLoopbackName('192.168.1.4')).toBe(false);
  });
});
