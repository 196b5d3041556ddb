/**
 * Loading a directory whose linear weights are already 4-bit (written by `quantizeModelDir`, or by
 * bitsandbytes + transformers). Core's loader asks for every weight by its HF name as a float
 * tensor, and has no hook to hand it something else; until it does, `openQuantizedModel` serves the
 * directory through a view in which each 4-bit weight appears as an f16 tensor of zeros, and its
 * plugin swaps that placeholder (freed at once) for a `FourBitLinear` read from the real file. The
 * placeholder costs one transient f16 tensor per layer while loading, never the whole model.
 */
import { definePlugin, parseSafetensors, type ByteSource, type LithePlugin, type ModelFiles, type SafetensorsFile, type Weight } from '@lithe/core';
import { isAuxTensor, quantizedWeightNames, readQuantized, readQuantState } from './checkpoint.js';
import type { FourBitType } from './codebooks.js';
import { FourBitLinear, type ComputeDType } from './four-bit-weights.js';
import { BiasAttacher, registerKernels } from './plugin.js';
import { safetensorsDType, safetensorsHeader, type HeaderEntry } from './safetensors-header.js';

export interface QuantizedModel {
  /** The directory as core's loader should see it: pass as `createPipeline({ model })`. */
  model: ModelFiles;
  /** Turns the placeholders into 4-bit modules: pass in `plugins`. */
  plugin: LithePlugin;
}

interface Segment {
  start: number;
  length: number;
  /** Offset in the real file, or -1 for zeros. */
  real: number;
}

interface Opened {
  file: SafetensorsFile;
  quantized: Map<string, FourBitType>;
}

/** A safetensors view of `file` with every 4-bit weight replaced by an f16 placeholder of its shape. */
async function placeholderView(name: string, file: SafetensorsFile, quantized: Map<string, FourBitType>): Promise<ByteSource> {
  const entries: HeaderEntry[] = [];
  const parts: { length: number; real: number }[] = [];
  const real = [...file.tensors.values()].sort((a, b) => a.byteOffset - b.byteOffset);
  for (const t of real) {
    if (isAuxTensor(t.name, quantized)) continue;
    const type = quantized.get(t.name);
    if (type) {
      const { shape } = await readQuantState(file, t.name, type);
      const byteLength = shape.reduce((a, b) => a * b, 1) * 2;
      entries.push({ name: t.name, dtype: 'F16', shape, byteLength });
      parts.push({ length: byteLength, real: -1 });
    } else {
      entries.push({ name: t.name, dtype: safetensorsDType(t.dtype), shape: t.shape, byteLength: t.byteLength });
      parts.push({ length: t.byteLength, real: t.byteOffset });
    }
  }
  const { prefix, dataBytes } = safetensorsHeader(entries, file.metadata);
  const segments: Segment[] = [];
  let at = prefix.length;
  for (const p of parts) {
    segments.push({ start: at, ...p });
    at += p.length;
  }
  const size = prefix.length + dataBytes;
  return {
    name,
    size,
    async read(offset, length, into) {
      if (offset < 0 || length < 0 || offset + length > size) throw new RangeError(`${name}: read of ${length} bytes at ${offset} is outside ${size} bytes`);
      // A read of exactly one real tensor goes straight to the file.
      const whole = segments.find((s) => s.start === offset && s.length === length);
      if (whole && whole.real >= 0) return file.source.read(whole.real, length, into);
      const out = into ? into.subarray(0, length) : new Uint8Array(length);
      out.fill(0);
      const end = offset + length;
      if (offset < prefix.length) out.set(prefix.subarray(offset, Math.min(end, prefix.length)), 0);
      for (const s of segments) {
        const a = Math.max(offset, s.start);
        const b = Math.min(end, s.start + s.length);
        if (a >= b || s.real < 0) continue;
        out.set(await file.source.read(s.real + (a - s.start), b - a), a - offset);
      }
      return out;
    },
    close: () => file.source.close?.() ?? Promise.resolve(),
  };
}

/**
 * Opens a model directory whose weights may be 4-bit (bitsandbytes layout). Non-quantized tensors
 * pass through untouched; `computeDType` rounds the dequantized weights as bitsandbytes' compute
 * dtype would (default f32: exact).
 */
export function openQuantizedModel(files: ModelFiles, opts: { computeDType?: ComputeDType } = {}): QuantizedModel {
  const opened = new Map<string, Opened>();
  const byWeight = (weight: string) => [...opened.values()].find((o) => o.quantized.has(weight));
  const model: ModelFiles = {
    location: files.location,
    has: (name) => files.has(name),
    readText: (name) => files.readText(name),
    async open(name) {
      const source = await files.open(name);
      if (!name.endsWith('.safetensors')) return source;
      const file = await parseSafetensors(source);
      const quantized = quantizedWeightNames(file.tensors);
      opened.set(name, { file, quantized });
      return quantized.size ? placeholderView(name, file, quantized) : source;
    },
  };
  const biases = new BiasAttacher();
  const plugin = definePlugin(() => ({
    name: 'nf4-prequantized',
    conflicts: ['nf4'],
    setup(ctx) {
      registerKernels(ctx.backend, ctx.kernels);
    },
    async transformWeights(tensor, info, ctx): Promise<Weight> {
      if (info.role === 'bias') return biases.bias(tensor, info);
      const o = byWeight(info.name);
      if (!o) {
        biases.reset();
        return tensor;
      }
      tensor.dispose();
      const q = await readQuantized(o.file, info.name, o.quantized.get(info.name)!);
      return biases.module(info.name, FourBitLinear.fromQuantized(info.name.replace(/\.weight$/, ''), ctx.backend, q, opts.computeDType ?? 'f32'));
    },
  }))();
  return { model, plugin };
}
