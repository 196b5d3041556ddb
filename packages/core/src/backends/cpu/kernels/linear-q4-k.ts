import { F16_TABLE } from '../../../tensor/half.js';
import { blockLinear } from './linear-q.js';

/**
 * q4_k super-block of 256: f16 d, f16 dmin, 12 bytes packing eight 6-bit (scale, min) pairs, then
 * 128 bytes of nibbles. Sub-blocks of 32 come in pairs over 32 bytes: low nibbles, then high ones;
 * x = d * scale * q - dmin * min.
 */
export const linearQ4_K = blockLinear(256, 144, (w, p, dst) => {
  const d = F16_TABLE[w[p] | (w[p + 1] << 8)];
  const dmin = F16_TABLE[w[p + 2] | (w[p + 3] << 8)];
  const s = p + 4;
  for (let pair = 0; pair < 4; pair++) {
    const q = p + 16 + pair * 32;
    for (let half = 0; half < 2; half++) {
      const j = pair * 2 + half;
      const sc = j < 4 ? w[s + j] & 63 : (w[s + j + 4] & 15) | ((w[s + j - 4] >> 6) << 4);
      const mn = j < 4 ? w[s + j + 4] & 63 : (w[s + j + 4] >> 4) | ((w[s + j] >> 6) << 4);
      const dl = d * sc;
      const ml = dmin * mn;
      const o = j * 32;
      const shift = half * 4;
      for (let l = 0; l < 32; l++) dst[o + l] = dl * ((w[q + l] >> shift) & 15) - ml;
    }
  }
});
