/**
 * DNS rebinding: a web page can make a browser send requests to a server on the user's own
 * machine under the page's host name. Without an API key, a server listening on loopback answers
 * only requests whose Host header names loopback: localhost, 127.0.0.0/8 or [::1], any port.
 */
import { isIP } from 'node:net';

/** The host part of a Host header: `[::1]:8080` -> `::1`, `Localhost:80` -> `localhost`. */
function hostName(header: string): string {
  const h = header.trim().toLowerCase();
  if (h.startsWith('[')) {
    const end = h.indexOf(']');
    return end < 0 ? h : h.slice(1, end);
  }
  const colon = h.indexOf(':');
  return colon < 0 ? h : h.slice(0, colon);
}

/** Whether an address or name is loopback (`localhost`, `127.x.y.z`, `::1`, `::ffff:127.x.y.z`). */
export function isLoopbackName(name: string): boolean {
  const n = name.toLowerCase().replace(/\.$/, '');
  if (n === 'localhost' || n.endsWith('.localhost')) return true;
  const v4 = n.startsWith('::ffff:') ? n.slice(7) : n;
  if (isIP(v4) === 4) return v4.startsWith('127.');
  // The URL parser writes IPv6 addresses in their canonical form (0:0::1 -> ::1).
  if (isIP(n) === 6) return new URL(`http://[${n}]/`).hostname === '[::1]';
  return false;
}

/** Whether a Host header value names loopback. */
export function isLoopbackHostHeader(header: string): boolean {
  return isLoopbackName(hostName(header));
}
