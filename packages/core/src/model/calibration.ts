/**
 * The calibration pass GPTQ and AWQ share: run the model over calibration windows block by block
 * and hand each linear layer's inputs to a technique, which returns the modules that replace the
 * block's linears. Block l is quantized before block l + 1 sees anything, and block l + 1's inputs
 * are block l's outputs computed with the quantized weights (AutoGPTQ's order), so each block
 * corrects for the error of the ones before it.
 *
 * Memory: the hidden states of every window at the current block (windows · seqLen · hidden f32:
 * 128 · 512 · 2048 · 4 bytes = 512 MiB for a 2048-wide model), one window's activations, and what
 * the technique accumulates (GPTQ: one in × in Hessian per distinct input). Never the activations
 * of the whole model. Runs on backends whose tensors are typed arrays (cpu, wasm).
 */
import { DenseKVCache } from '../kv-cache/dense-kv-cache.js';
import type { Tensor } from '../tensor/tensor.js';
import type { LlamaLayer, LlamaModel } from './llama.js';
import type { LinearModule } from './linear-module.js';

/** The seven linear layers of a decoder block. */
export type LinearSlot = 'q' | 'k' | 'v' | 'o' | 'gate' | 'up' | 'down';
export const LINEAR_SLOTS: readonly LinearSlot[] = ['q', 'k', 'v', 'o', 'gate', 'up', 'down'];

/** The Hugging Face name (without `.weight`) of block `layer`'s linear in `slot`, as checkpoints store it. */
export function linearName(layer: number, slot: LinearSlot): string {
  const part: Record<LinearSlot, string> = { q: 'self_attn.q_proj', k: 'self_attn.k_proj', v: 'self_attn.v_proj', o: 'self_attn.o_proj', gate: 'mlp.gate_proj', up: 'mlp.up_proj', down: 'mlp.down_proj' };
  return `model.layers.${layer}.${part[slot]}`;
}

/**
 * The distinct inputs of a block's linears: q/k/v read the normed block input, o the attention
 * output, gate/up the normed residual, down the SwiGLU product.
 */
export type LinearInput = 'qkv' | 'o' | 'gateUp' | 'down';
export const LINEAR_INPUTS: readonly LinearInput[] = ['qkv', 'o', 'gateUp', 'down'];
export const INPUT_OF: Readonly<Record<LinearSlot, LinearInput>> = { q: 'qkv', k: 'qkv', v: 'qkv', o: 'o', gate: 'gateUp', up: 'gateUp', down: 'down' };
/** The slot whose forward call carries each input (observed once, not once per reader). */
const CARRIER: Readonly<Record<LinearInput, LinearSlot>> = { qkv: 'q', o: 'o', gateUp: 'gate', down: 'down' };

/** A block's linear module; a layer without k/v (a KV layer map shares another's) cannot be calibrated alone. */
function linearAt(layer: LlamaLayer, slot: LinearSlot, l: number): LinearModule {
  const m = layer[slot];
  if (!m) throw new Error(`calibration: block ${l} has no ${slot} projection (it reads another layer's keys and values); calibrate a model whose every layer has its own`);
  return m;
}

/** What a technique does with one block. */
export interface BlockCalibrator {
  /**
   * Sees `rows` rows of one input of the block (x row-major [rows, width], exactly rows · width
   * values, f32), window by window.
   * The array is reused afterwards: accumulate statistics, do not keep it.
   */
  observe(input: LinearInput, x: Float32Array, rows: number): void;
  /**
   * After every window: the modules that replace the block's linears (slots left out stay).
   * `probe` runs the block on its calibration inputs, for techniques that score candidates by
   * the block's output (AWQ).
   */
  finish(probe: BlockProbe): Promise<Partial<Record<LinearSlot, LinearModule>>> | Partial<Record<LinearSlot, LinearModule>>;
}

/** The block being calibrated, runnable on its inputs with whatever modules `layer` holds now. */
export interface BlockProbe {
  /** Calibration windows available (each `seqLen` tokens). */
  readonly windows: number;
  readonly seqLen: number;
  /**
   * The block's output for the first `windows` windows (default all), row-major
   * [windows · seqLen, hidden], into `out` when given (it must hold exactly that many values).
   * The block's inputs are left as they were.
   */
  run(windows?: number, out?: Float32Array): Float32Array;
}

export interface CalibrationTechnique {
  /** A calibrator for block `l` (its current modules in `layer`). */
  block(l: number, layer: LlamaLayer): BlockCalibrator;
}

export interface CalibrateOptions {
  /** After each block is replaced: blocks done, total. */
  onBlock?: (done: number, total: number) => void;
}

/** A linear that shows its input to an observer, then runs as before. */
class ObservedLinear implements LinearModule {
  constructor(
    readonly inner: LinearModule,
    private readonly see: (x: Float32Array, rows: number) => void,
  ) {}
  get name() { return this.inner.name; }
  get inFeatures() { return this.inner.inFeatures; }
  get outFeatures() { return this.inner.outFeatures; }
  get bytes() { return this.inner.bytes; }
  forward(x: Tensor, out: Tensor): void {
    const rows = x.size / this.inner.inFeatures;
    const xs = x.handle as Float32Array;
    this.see(xs.length === x.size ? xs : xs.subarray(0, x.size), rows);
    this.inner.forward(x, out);
  }
  dispose(): void {
    this.inner.dispose();
  }
}

/**
 * `samples` windows of `seqLen` tokens from tokenized calibration text, evenly spaced over it
 * (overlapping when the text is shorter than samples · seqLen).
 */
export function calibrationWindows(ids: ArrayLike<number>, samples: number, seqLen: number): Int32Array[] {
  if (!(Number.isSafeInteger(samples) && samples > 0)) throw new RangeError(`calibration: samples must be a positive integer, got ${samples}`);
  if (!(Number.isSafeInteger(seqLen) && seqLen > 0)) throw new RangeError(`calibration: seqLen must be a positive integer, got ${seqLen}`);
  if (ids.length < seqLen) throw new RangeError(`calibration: the text has ${ids.length} tokens, fewer than one window of ${seqLen}; give more text or a smaller seqLen`);
  const last = ids.length - seqLen;
  const out: Int32Array[] = [];
  for (let s = 0; s < samples; s++) {
    const start = samples === 1 ? 0 : Math.round((s * last) / (samples - 1));
    out.push(Int32Array.from({ length: seqLen }, (_, t) => ids[start + t]));
  }
  return out;
}

/**
 * Runs the calibration pass: per block, every window through the block with its linears observed,
 * then the technique's replacements swapped in (the old modules disposed), then every window
 * through the new block to make the next block's inputs. Returns when every block is replaced.
 */
export async function calibrate(model: LlamaModel, windows: readonly Int32Array[], technique: CalibrationTechnique, options: CalibrateOptions = {}): Promise<void> {
  const { backend, config: c } = model;
  if (backend.name !== 'cpu' && backend.name !== 'wasm') throw new Error(`calibration runs on the cpu or wasm backend (it reads activations directly), not '${backend.name}'`);
  if (windows.length === 0) throw new RangeError('calibration: no windows given');
  const seqLen = windows[0].length;
  if (windows.some((w) => w.length !== seqLen) || seqLen === 0) throw new RangeError('calibration: every window must have the same, non-zero number of tokens');
  const d = c.hiddenSize;
  const hidden = backend.allocate([windows.length * seqLen, d], 'f32', 'activations');
  const scratch = backend.allocate([seqLen, d], 'f32', 'activations');
  const cache = new DenseKVCache({ backend, nLayers: 1, nKVHeads: c.nKVHeads, headDim: c.headDim, capacity: seqLen });
  const windowOf = (w: number) => backend.view(hidden, [seqLen, d], w * seqLen * d);
  try {
    windows.forEach((ids, w) => model.embedTokens(ids, windowOf(w)));
    for (let l = 0; l < model.layers.length; l++) {
      const layer = model.layers[l];
      const calibrator = technique.block(l, layer);
      const original = { ...layer };
      for (const input of LINEAR_INPUTS) {
        const slot = CARRIER[input];
        layer[slot] = new ObservedLinear(linearAt(layer, slot, l), (x, rows) => calibrator.observe(input, x, rows));
      }
      try {
        for (let w = 0; w < windows.length; w++) {
          backend.copy(windowOf(w), scratch);
          cache.reset();
          model.forwardBlock(l, scratch, cache);
        }
      } finally {
        Object.assign(layer, original);
      }
      const probe: BlockProbe = {
        windows: windows.length,
        seqLen,
        run(n = windows.length, out) {
          if (!(Number.isInteger(n) && n > 0 && n <= windows.length)) throw new RangeError(`calibration probe: windows must be 1..${windows.length}, got ${n}`);
          const dest = out ?? new Float32Array(n * seqLen * d);
          if (dest.length !== n * seqLen * d) throw new RangeError(`calibration probe: out holds ${dest.length} values, the output of ${n} windows is ${n * seqLen * d}`);
          for (let w = 0; w < n; w++) {
            backend.copy(windowOf(w), scratch);
            cache.reset();
            model.forwardBlock(l, scratch, cache);
            dest.set((scratch.handle as Float32Array).subarray(0, seqLen * d), w * seqLen * d);
          }
          return dest;
        },
      };
      const replaced = await calibrator.finish(probe);
      for (const slot of LINEAR_SLOTS) {
        const m = replaced[slot];
        if (!m) continue;
        const old = linearAt(layer, slot, l);
        if (m.inFeatures !== old.inFeatures || m.outFeatures !== old.outFeatures) {
          throw new Error(`calibration: block ${l}'s ${slot} was replaced by a ${m.outFeatures} × ${m.inFeatures} module; it is ${old.outFeatures} × ${old.inFeatures}`);
        }
        old.dispose();
        layer[slot] = m;
      }
      for (let w = 0; w < windows.length; w++) {
        cache.reset();
        model.forwardBlock(l, windowOf(w), cache);
      }
      options.onBlock?.(l + 1, model.layers.length);
    }
  } finally {
    cache.dispose();
    scratch.dispose();
    hidden.dispose();
    model.releaseActivations();
  }
}
