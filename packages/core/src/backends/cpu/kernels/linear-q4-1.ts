import { F16_TABLE } from '../../../tensor/half.js';
import { blockLinear } from './linear-q.js';

/** q4_1 block: f16 d, f16 m, 16 bytes of nibbles laid out as q4_0's; x = q * d + m. */
export const linearQ4_1 = blockLinear(32, 20, (w, p, dst) => {
  const d = F16_TABLE[w[p] | (w[p + 1] << 8)];
  const m = F16_TABLE[w[p + 2] | (w[p + 3] << 8)];
  for (let j = 0; j < 16; j++) {
    const q = w[p + 4 + j];
    dst[j] = (q & 15) * d + m;
    dst[j + 16] = (q >> 4) * d + m;
  }
});
