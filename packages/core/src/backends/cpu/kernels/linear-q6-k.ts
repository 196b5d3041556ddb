import { F16_TABLE } from '../../../tensor/half.js';
import { blockLinear } from './linear-q.js';

/**
 * q6_k super-block of 256: 128 bytes of low 4 bits, 64 bytes of high 2 bits, 16 signed 8-bit scales
 * (one per 16 values), f16 d last; x = d * scale * (q - 32).
 */
export const linearQ6_K = blockLinear(256, 210, (w, p, dst) => {
  const d = F16_TABLE[w[p + 208] | (w[p + 209] << 8)];
  for (let n = 0; n < 2; n++) {
    const ql = p + n * 64;
    const qh = p + 128 + n * 32;
    const sc = p + 192 + n * 8;
    const o = n * 128;
    for (let l = 0; l < 32; l++) {
      const is = l >> 4;
      const h = w[qh + l];
      const lo = w[ql + l];
      const hi = w[ql + l + 32];
      dst[o + l] = d * ((w[sc + is] << 24) >> 24) * (((lo & 15) | ((h & 3) << 4)) - 32);
      dst[o + l + 32] = d * ((w[sc + is + 2] << 24) >> 24) * (((hi & 15) | (((h >> 2) & 3) << 4)) - 32);
      dst[o + l + 64] = d * ((w[sc + is + 4] << 24) >> 24) * (((lo >> 4) | (((h >> 4) & 3) << 4)) - 32);
      dst[o + l + 96] = d * ((w[sc + is + 6] << 24) >> 24) * (((hi >> 4) | (((h >> 6) & 3) << 4)) - 32);
    }
  }
});
