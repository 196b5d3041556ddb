import { F16_TABLE } from '../../../tensor/half.js';
import { blockLinear } from './linear-q.js';

/** q8_0 block: f16 d, then 32 signed bytes; x = q * d. */
export const linearQ8_0 = blockLinear(32, 34, (w, p, dst) => {
  const d = F16_TABLE[w[p] | (w[p + 1] << 8)];
  for (let j = 0; j < 32; j++) dst[j] = ((w[p + 2 + j] << 24) >> 24) * d;
});
