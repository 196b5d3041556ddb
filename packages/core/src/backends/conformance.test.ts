/**
 * Backend conformance: every op on every backend against the CPU reference kernels, on fresh random
 * inputs, with shapes that cross workgroup sizes (1, 63, 64, 65, 257, ...) and, through a WebGPU
 * backend whose largest binding is lowered to a few KiB, tensors split over several GPU buffers.
 * A backend joins with one line in BACKENDS; an op or shape with one line in CASES.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Backend, TypedArray } from '../backend/backend.js';
import type { AttentionParams } from '../backend/kernel-signatures.js';
import { DenseKVCache } from '../kv-cache/dense-kv-cache.js';
import { f32ToBf16, f32ToF16 } from '../tensor/half.js';
import type { Tensor } from '../tensor/tensor.js';
import { freshRng, randn } from '../testing/random.js';
import { CpuBackend } from './cpu/cpu-backend.js';
import { WasmBackend } from './wasm/wasm-backend.js';
import { webGpuForTests } from './webgpu/testing.js';

type Maker = () => Promise<{ backend: Backend | null; reason: string; maxBindingBytes?: number }>;

const SPLIT_BYTES = 4096;
const BACKENDS: [string, Maker][] = [
  ['cpu', async () => ({ backend: new CpuBackend(), reason: '' })],
  ['wasm, 2 threads', async () => ({ backend: await WasmBackend.create({ threads: 2 }), reason: '' })],
  ['webgpu', () => webGpuForTests()],
  // The shapes a hardware GPU gets (on a CPU adapter the kernels pick others): the decode linear.
  ['webgpu, GPU kernel shapes', () => webGpuForTests({ cpuAdapter: false })],
  [`webgpu, bindings of ${SPLIT_BYTES} bytes`, async () => ({ ...(await webGpuForTests({ maxBindingBytes: SPLIT_BYTES })), maxBindingBytes: SPLIT_BYTES })],
];

const rng = freshRng();
type Float = 'f32' | 'f16' | 'bf16';

/** Host data of a tensor to create on each backend. */
interface HostTensor {
  data: Float32Array | Int32Array;
  shape: number[];
  dtype: Float | 'i32';
}

const f32 = (shape: number[], scale = 1): HostTensor => ({ data: randn(shape.reduce((a, b) => a * b, 1), rng.normal, scale), shape, dtype: 'f32' });
const weight = (shape: number[], dtype: Float, scale = 0.5): HostTensor => ({ ...f32(shape, scale), dtype });

function upload(b: Backend, h: HostTensor): Tensor {
  const bytes =
    h.dtype === 'f16' || h.dtype === 'bf16'
      ? new Uint8Array(Uint16Array.from(h.data, h.dtype === 'f16' ? f32ToF16 : f32ToBf16).buffer)
      : new Uint8Array(h.data.slice().buffer);
  return b.upload(bytes, h.shape, h.dtype, 'other');
}

/**
 * One op on one input set. `run` calls the kernel on a backend and returns the tensors to compare;
 * `tol` is the largest difference allowed relative to max(1, largest |value|) of the reference.
 */
interface Case {
  name: string;
  tol: number;
  /** Bytes one binding must hold, e.g. one row (cases beyond a backend's lowered limit are not run there). */
  wholeBytes?: number;
  run(b: Backend): Promise<Tensor[]> | Tensor[];
}

const k = (b: Backend) => <O extends Parameters<Backend['kernels']['get']>[1]>(op: O, variant?: string) => b.kernels.get(b.name, op, variant);
const out = (b: Backend, shape: number[], dtype: 'f32' | 'i32' = 'f32') => b.allocate(shape, dtype, 'other');

function linearCase(T: number, K: number, N: number, dtype: Float, bias: boolean): Case {
  const x = f32([T, K]);
  const w = weight([N, K], dtype);
  const bs = bias ? f32([N]) : null;
  return {
    name: `linear ${dtype} x[${T}, ${K}] w[${N}, ${K}]${bias ? ' + bias' : ''}`,
    tol: 1e-5 * Math.sqrt(K),
    run: (b) => {
      const y = out(b, [T, N]);
      k(b)('linear', dtype)(upload(b, x), upload(b, w), bs && upload(b, bs), y);
      return [y];
    },
  };
}

function embeddingCase(V: number, D: number, T: number, dtype: Float): Case {
  const table = weight([V, D], dtype, 1);
  const ids = Int32Array.from({ length: T }, (_, i) => (i === 0 ? V - 1 : i === 1 ? 0 : Math.floor(rng.uniform() * V)));
  return {
    name: `embedding ${dtype} [${V}, ${D}] × ${T} ids`,
    tol: 0,
    run: (b) => {
      const y = out(b, [T, D]);
      k(b)('embedding', dtype)(upload(b, table), ids, y);
      return [y];
    },
  };
}

function rmsNormCase(R: number, D: number, inPlace: boolean): Case {
  const x = f32([R, D], 3);
  const w = f32([D]);
  return {
    name: `rmsNorm [${R}, ${D}]${inPlace ? ' in place' : ''}`,
    tol: 1e-5,
    run: (b) => {
      const xt = upload(b, x);
      const y = inPlace ? xt : out(b, [R, D]);
      k(b)('rmsNorm')(xt, upload(b, w), 1e-5, y);
      return [y];
    },
  };
}

function ropeCase(T: number, nHeads: number, headDim: number, start: number): Case {
  const x = f32([T, nHeads * headDim]);
  const positions = Int32Array.from({ length: T }, (_, i) => start + i);
  const invFreq = Float32Array.from({ length: headDim / 2 }, (_, i) => 10000 ** ((-2 * i) / headDim));
  return {
    name: `rope T=${T} heads=${nHeads} headDim=${headDim} from position ${start}`,
    tol: 1e-5,
    run: (b) => {
      const xt = upload(b, x);
      k(b)('rope')(xt, nHeads, positions, invFreq);
      return [xt];
    },
  };
}

function attentionCase(T: number, nHeads: number, nKV: number, headDim: number, startPos: number, window?: number, kv: 'f32' | 'f16' = 'f32', noDiagonal?: boolean): Case {
  const capacity = startPos + T + 2;
  const kvWidth = nKV * headDim;
  const past = f32([startPos + T, kvWidth]);
  const pastV = f32([startPos + T, kvWidth]);
  const q = f32([T, nHeads * headDim]);
  const params: AttentionParams = { nHeads, nKVHeads: nKV, headDim, scale: 1 / Math.sqrt(headDim), startPos, window, noDiagonal };
  return {
    name: `attention ${kv} cache T=${T} heads=${nHeads}/${nKV} headDim=${headDim} startPos=${startPos}${window ? ` window=${window}` : ''}${noDiagonal ? ' no diagonal' : ''}`,
    tol: 1e-5,
    wholeBytes: capacity * kvWidth * (kv === 'f16' ? 2 : 4),
    run: (b) => {
      const cache = new DenseKVCache({ backend: b, nLayers: 1, nKVHeads: nKV, headDim, capacity, dtype: kv });
      // Two writes: the past, then this step's rows, as the model appends.
      const rows = (h: HostTensor, from: number, to: number): HostTensor => ({ data: h.data.slice(from * kvWidth, to * kvWidth), shape: [to - from, kvWidth], dtype: 'f32' });
      if (startPos > 0) {
        cache.write(0, upload(b, rows(past, 0, startPos)), upload(b, rows(pastV, 0, startPos)));
        cache.commit(startPos);
      }
      cache.write(0, upload(b, rows(past, startPos, startPos + T)), upload(b, rows(pastV, startPos, startPos + T)));
      const y = out(b, [T, nHeads * headDim]);
      k(b)('attention', 'dense')(upload(b, q), cache.layer(0), params, y);
      return [y];
    },
  };
}

/** f32 rows into an f16 tensor at a row offset: the same bits everywhere (round to nearest even). */
function convertCase(rows: number, width: number, at: number): Case {
  const x = f32([rows, width], 3);
  // Ties at the f16 rounding point (both parities), subnormal halves, the largest finite half and
  // values that overflow to infinity.
  const special = [1 + 2 ** -11, 1 + 3 * 2 ** -11, -(2 ** -14) * 1.5, 2 ** -24 * 0.5, 2 ** -24 * 1.5, 3e-6, -7e-8, 65504, 65519, 65520, -1e6, 0, -0];
  x.data.set(special);
  return {
    name: `convert f32 [${rows}, ${width}] to f16 at row ${at}`,
    tol: 0,
    wholeBytes: (rows + at) * width * 4,
    run: (b) => {
      const y = b.allocate([rows + at, width], 'f16', 'other');
      b.write(y, new Uint16Array((rows + at) * width).fill(0x3c00));
      k(b)('convert', 'f16')(upload(b, x), y, at * width);
      return [y];
    },
  };
}

function elementwiseCase(op: 'add' | 'swiglu', shape: number[], alias: 'none' | 'a' | 'b'): Case {
  const a = f32(shape, 2);
  const c = f32(shape, 2);
  return {
    name: `${op} [${shape.join(', ')}]${alias === 'none' ? '' : ` into ${alias}`}`,
    tol: 1e-6,
    wholeBytes: shape[shape.length - 1] * 4,
    run: (b) => {
      const [at, bt] = [upload(b, a), upload(b, c)];
      const y = alias === 'a' ? at : alias === 'b' ? bt : out(b, shape);
      k(b)(op)(at, bt, y);
      return [y];
    },
  };
}

function softmaxCase(R: number, N: number): Case {
  const x = f32([R, N], 4);
  return {
    name: `softmax [${R}, ${N}]`,
    // The row sum's rounding grows with the row's length (the GPU sums in a tree, the CPU in order):
    // a 32000-wide row was measured 1.2e-6 off at a largest probability near 0.2.
    tol: 1e-6 * Math.max(1, Math.sqrt(N / 2000)),
    wholeBytes: N * 4,
    run: (b) => {
      const y = out(b, [R, N]);
      k(b)('softmax')(upload(b, x), y);
      return [y];
    },
  };
}

function argmaxCase(R: number, N: number): Case {
  // Few distinct values, so rows have ties: the first index must win everywhere.
  const x: HostTensor = { data: Float32Array.from({ length: R * N }, () => Math.floor(rng.uniform() * 8)), shape: [R, N], dtype: 'f32' };
  return {
    name: `argmax [${R}, ${N}] with ties`,
    tol: 0,
    wholeBytes: N * 4,
    run: (b) => {
      const y = out(b, [R], 'i32');
      k(b)('argmax')(upload(b, x), y);
      return [y];
    },
  };
}

/** Rows with a NaN somewhere (first, last, middle) give -1; the other rows their argmax. */
function argmaxNaNCase(R: number, N: number): Case {
  const data = Float32Array.from({ length: R * N }, () => rng.normal());
  for (let r = 0; r < R; r += 2) data[r * N + [0, N - 1, Math.floor(rng.uniform() * N)][(r / 2) % 3]] = NaN;
  const x: HostTensor = { data, shape: [R, N], dtype: 'f32' };
  return {
    name: `argmax [${R}, ${N}] with NaN rows`,
    tol: 0,
    wholeBytes: N * 4,
    run: (b) => {
      const y = out(b, [R], 'i32');
      k(b)('argmax')(upload(b, x), y);
      return [y];
    },
  };
}

/** Backend.copy and views at element offsets (what the KV cache and the model's last-row logits use). */
function copyViewCase(rows: number, width: number, at: number): Case {
  const src = f32([rows, width]);
  const dst = f32([rows + at + 1, width]);
  return {
    name: `copy [${rows}, ${width}] at row ${at}, read through a view`,
    tol: 0,
    run: (b) => {
      const d = upload(b, dst);
      b.copy(upload(b, src), d, at * width);
      return [d, b.view(d, [rows, width], at * width), b.view(d, [1, width], (rows + at) * width)];
    },
  };
}

const CASES: Case[] = [
  ...(['f32', 'f16', 'bf16'] as const).flatMap((dt) => [
    linearCase(1, 64, 65, dt, false),
    linearCase(3, 63, 257, dt, true),
    linearCase(9, 65, 64, dt, false),
    // 2-16 rows: the small-row tiles on a GPU (a K that is not a multiple of the 64-k chunk, N not of 8).
    linearCase(16, 130, 77, dt, true),
    linearCase(5, 200, 9, dt, false),
    linearCase(33, 63, 65, dt, true),
    embeddingCase(300, 65, 5, dt),
    embeddingCase(65, 64, 1, dt),
  ]),
  linearCase(8, 1, 5, 'f32', true),
  linearCase(70, 257, 33, 'f32', false),
  rmsNormCase(1, 1, false),
  rmsNormCase(3, 63, false),
  rmsNormCase(65, 64, true),
  rmsNormCase(2, 257, true),
  ropeCase(1, 1, 2, 0),
  ropeCase(5, 3, 64, 1000),
  ropeCase(65, 2, 130, 7),
  attentionCase(1, 4, 2, 4, 0),
  attentionCase(1, 3, 1, 64, 130),
  attentionCase(5, 4, 4, 65, 3),
  attentionCase(70, 2, 1, 32, 0),
  attentionCase(6, 4, 2, 16, 70, 9),
  attentionCase(2, 2, 2, 130, 64),
  attentionCase(1, 4, 2, 4, 0, undefined, 'f16'),
  attentionCase(1, 3, 1, 64, 130, undefined, 'f16'),
  attentionCase(5, 4, 4, 66, 3, undefined, 'f16'),
  attentionCase(70, 2, 1, 32, 0, undefined, 'f16'),
  attentionCase(6, 4, 2, 18, 70, 9, 'f16'),
  // LCKV's masked diagonal: the first row attends to nothing (zeros), the others to earlier positions.
  attentionCase(1, 4, 2, 4, 0, undefined, 'f32', true),
  attentionCase(1, 3, 1, 64, 130, undefined, 'f32', true),
  attentionCase(70, 2, 1, 32, 0, undefined, 'f32', true),
  attentionCase(6, 4, 2, 16, 70, 9, 'f32', true),
  attentionCase(5, 4, 4, 65, 3, 1, 'f16', true),
  attentionCase(70, 2, 1, 32, 0, undefined, 'f16', true),
  convertCase(37, 6, 5),
  elementwiseCase('add', [1], 'none'),
  elementwiseCase('add', [65, 63], 'a'),
  elementwiseCase('add', [257, 64], 'b'),
  elementwiseCase('swiglu', [1, 65], 'none'),
  elementwiseCase('swiglu', [3, 257], 'a'),
  elementwiseCase('add', [4097, 1025], 'none'),
  softmaxCase(1, 1),
  softmaxCase(3, 65),
  softmaxCase(2, 32000),
  argmaxCase(1, 1),
  argmaxCase(4, 63),
  argmaxCase(3, 65),
  argmaxCase(2, 32000),
  argmaxNaNCase(7, 129),
  argmaxNaNCase(3, 32000),
  copyViewCase(3, 64, 2),
  copyViewCase(20, 65, 7),
];

const reference = new CpuBackend();
const expected = new Map<string, TypedArray[]>();

beforeAll(async () => {
  for (const c of CASES) expected.set(c.name, await Promise.all((await c.run(reference)).map((t) => reference.read(t))));
});

function compare(got: TypedArray, want: TypedArray, tol: number): number {
  expect(got.length).toBe(want.length);
  let scale = 1;
  for (let i = 0; i < want.length; i++) scale = Math.max(scale, Math.abs(want[i]));
  let worst = 0;
  for (let i = 0; i < want.length; i++) {
    const d = Math.abs(got[i] - want[i]);
    if (!(d <= worst)) worst = Number.isNaN(d) ? Infinity : d;
  }
  expect(worst, `max difference ${worst} over scale ${scale}`).toBeLessThanOrEqual(tol * scale);
  return worst;
}

for (const [name, make] of BACKENDS) {
  describe(`conformance: ${name} against the CPU reference (seed ${rng.seed})`, async () => {
    const { backend, reason, maxBindingBytes = Infinity } = await make();
    afterAll(async () => backend?.sync());
    it.skipIf(!backend).each(CASES.map((c) => [c.name, c] as const))('%s', async (_, c) => {
      if (!backend) return console.warn(reason);
      if ((c.wholeBytes ?? 0) > maxBindingBytes) return;
      const outs = await c.run(backend);
      const got = await Promise.all(outs.map((t) => backend.read(t)));
      const want = expected.get(c.name)!;
      got.forEach((g, i) => compare(g, want[i], c.tol));
    });
  });
}
