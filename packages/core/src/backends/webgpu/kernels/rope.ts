import type { Tensor } from '../../../tensor/tensor.js';
import { grid } from '../program.js';
import code from '../shaders/rope.wgsl.js';
import { gpuOf, type StagedData, type WebGpuBackend } from '../webgpu-backend.js';

/**
 * cos and sin per (position, frequency) are computed here in f64 from the f32 angle, exactly as the
 * CPU kernel does, and shared by the q and k rotations of every layer in the same submission.
 */
interface Table {
  gpu: WebGpuBackend;
  positions: Int32Array;
  invFreq: Float32Array;
  values: Float32Array;
  staged: StagedData | null;
}
let last: Table | null = null;

function table(gpu: WebGpuBackend, positions: Int32Array, invFreq: Float32Array): Table {
  const same =
    last &&
    last.gpu === gpu &&
    last.invFreq === invFreq &&
    last.positions.length === positions.length &&
    last.positions.every((p, i) => p === positions[i]);
  if (same) return last!;
  const half = invFreq.length;
  const rows = positions.length;
  const values = new Float32Array(2 * rows * half);
  for (let t = 0; t < rows; t++) {
    for (let i = 0; i < half; i++) {
      const angle = Math.fround(positions[t] * invFreq[i]);
      values[t * half + i] = Math.cos(angle);
      values[rows * half + t * half + i] = Math.sin(angle);
    }
  }
  last = { gpu, positions: positions.slice(), invFreq, values, staged: null };
  return last;
}

/** Rotary embedding on x [T, nHeads * headDim] in place. */
export function rope(x: Tensor, nHeads: number, positions: Int32Array, invFreq: Float32Array): void {
  const gpu = gpuOf(x);
  const half = invFreq.length;
  const width = nHeads * half * 2;
  for (const [r0, r1] of gpu.rowRuns(positions.length, [[x, width]])) {
    const rows = r1 - r0;
    const tab = table(gpu, r0 === 0 && r1 === positions.length ? positions : positions.subarray(r0, r1), invFreq);
    const sx = gpu.at(x, r0 * width, rows * width);
    const n = rows * nHeads * half;
    tab.staged =
      gpu.dispatch(
      {
        key: 'rope',
        code,
        bindings: [{ name: 'x', buf: sx.buf, type: 'f32', write: true }],
        params: [n, rows, nHeads, half, sx.offset],
        data: { type: 'f32', array: tab.values },
        workgroups: grid(n),
      },
      gpu.isStaged(tab.staged) ? tab.staged : undefined,
    ) ?? null;
  }
}
