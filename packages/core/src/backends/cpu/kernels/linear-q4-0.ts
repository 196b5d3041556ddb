import { F16_TABLE } from '../../../tensor/half.js';
import { blockLinear } from './linear-q.js';

/** q4_0 block: f16 d, 16 bytes; value j < 16 is byte j's low nibble, j >= 16 byte (j - 16)'s high nibble; x = (q - 8) * d. */
export const linearQ4_0 = blockLinear(32, 18, (w, p, dst) => {
  const d = F16_TABLE[w[p] | (w[p + 1] << 8)];
  for (let j = 0; j < 16; j++) {
    const q = w[p + 2 + j];
    dst[j] = ((q & 15) - 8) * d;
    dst[j + 16] = ((q >> 4) - 8) * d;
  }
});
