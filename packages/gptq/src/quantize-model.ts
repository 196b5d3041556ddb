import { calibrate, linearName, decodeHalfInto, DenseLinear, GroupedIntLinear, INPUT_OF, LINEAR_SLOTS, type BlockCalibrator, type LinearInput, type LinearModule, type LinearSlot, type LlamaModel, type Tensor } from '@lithe/core';
import { toGroupedInt } from './checkpoint.js';
import { checkGptqOptions, gptqQuantize, rtnQuantize, type GptqOptions, type QuantizedLinear } from './gptq.js';
import { HessianAccumulator } from './hessian.js';

export interface QuantizeModelOptions extends GptqOptions {
  /** 'gptq' (needs calibration windows) or 'rtn' (round-to-nearest, the baseline). */
  method?: 'gptq' | 'rtn';
  /** Called after each linear is quantized: its HF prefix, the result, linears done, total. */
  onLinear?: (name: string, q: QuantizedLinear, done: number, total: number) => void;
}

function floatValues(t: Tensor): Float32Array {
  const raw = t.handle as Float32Array | Uint16Array;
  if (t.dtype === 'f32') return raw as Float32Array;
  if (t.dtype === 'f16' || t.dtype === 'bf16') {
    const out = new Float32Array(t.size);
    decodeHalfInto(raw as Uint16Array, t.dtype as 'f16' | 'bf16', out);
    return out;
  }
  throw new Error(`gptq: cannot quantize a ${t.dtype} weight; load the model in f32, f16 or bf16`);
}

function denseOf(m: LinearModule | null, name: string): DenseLinear {
  // A layer of a KV layer map (LCKV, CLA) may have no k/v projections of its own.
  if (!m) throw new Error(`gptq: '${name}' does not exist (the layer reads another layer's keys and values); GPTQ runs on models whose every layer has its own`);
  if (!(m instanceof DenseLinear)) throw new Error(`gptq: '${name}' is already a ${m.constructor.name}; quantize a model with float weights (no other weight plugin)`);
  return m;
}

/** The replacement module: the quantized weight in core's grouped int format, and a copy of the bias. */
function replacement(model: LlamaModel, dense: DenseLinear, q: QuantizedLinear, name: string): GroupedIntLinear {
  const b = dense.bias;
  const bias = b ? model.backend.upload(new Uint8Array((b.handle as Float32Array).slice().buffer), b.shape, 'f32', 'weights') : null;
  return GroupedIntLinear.fromData(name, model.backend, toGroupedInt(q), bias);
}

/**
 * Quantizes every decoder linear of a loaded model (cpu or wasm backend, float weights) in place:
 * GPTQ through core's calibration pass over `windows` (each block quantized from the inputs the
 * already quantized blocks produce), or round-to-nearest. Each linear becomes a GroupedIntLinear;
 * the results (AutoGPTQ's terms) go to `onLinear`, e.g. to be written as a checkpoint. The
 * embeddings, norms and lm_head stay as they are.
 */
export async function quantizeModel(model: LlamaModel, windows: readonly Int32Array[] | null, options: QuantizeModelOptions): Promise<void> {
  checkGptqOptions(options);
  const method = options.method ?? 'gptq';
  const total = model.layers.length * LINEAR_SLOTS.length;
  let done = 0;
  const report = (name: string, q: QuantizedLinear) => options.onLinear?.(name, q, ++done, total);

  if (method === 'rtn') {
    model.layers.forEach((layer, l) => {
      for (const slot of LINEAR_SLOTS) {
        const name = linearName(l, slot);
        const dense = denseOf(layer[slot], name);
        const [outF, inF] = dense.weight.shape;
        const q = rtnQuantize(floatValues(dense.weight), outF, inF, options);
        report(name, q);
        const next = replacement(model, dense, q, name);
        dense.dispose();
        layer[slot] = next;
      }
    });
    return;
  }
  if (method !== 'gptq') throw new Error(`gptq: method must be 'gptq' or 'rtn', got '${String(method)}'`);
  if (!windows || windows.length === 0) throw new Error('gptq: GPTQ needs calibration windows (calibrationWindows over tokenized text)');

  await calibrate(model, windows, {
    block(l, layer): BlockCalibrator {
      const hessians = new Map<LinearInput, HessianAccumulator>();
      for (const slot of LINEAR_SLOTS) denseOf(layer[slot], linearName(l, slot));
      return {
        observe(input, x, rows) {
          let h = hessians.get(input);
          if (!h) hessians.set(input, (h = new HessianAccumulator(x.length / rows)));
          h.add(x, rows);
        },
        finish() {
          const out: Partial<Record<LinearSlot, LinearModule>> = {};
          const H = new Map<LinearInput, Float64Array>();
          for (const slot of LINEAR_SLOTS) {
            const name = linearName(l, slot);
            const dense = layer[slot] as DenseLinear;
            const input = INPUT_OF[slot];
            const acc = hessians.get(input);
            if (!acc) throw new Error(`gptq: block ${l}'s ${slot} saw no calibration input`);
            if (!H.has(input)) H.set(input, acc.value());
            const [outF, inF] = dense.weight.shape;
            const q = gptqQuantize(floatValues(dense.weight), outF, inF, H.get(input)!, options);
            report(name, q);
            out[slot] = replacement(model, dense, q, name);
          }
          return out;
        },
      };
    },
  });
}
