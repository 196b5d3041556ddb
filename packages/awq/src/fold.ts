/**
 * Folding AWQ's scales into the model: a group of linears reading input x gets W·diag(s) and its
 * producer makes x / s instead of x, so the full-precision model computes exactly what it did.
 *
 * | group | linears | producer of their input |
 * |---|---|---|
 * | qkv | q, k, v | the RMSNorm weight before attention (attnNorm / s) |
 * | o | o | v (its output rows / s; attention is linear in v) |
 * | gateUp | gate, up | the RMSNorm weight before the MLP (mlpNorm / s) |
 * | down | down | up (its output rows / s; SwiGLU is linear in up) |
 *
 * v before o needs one v channel per o input: with grouped-query attention several query heads
 * read one v channel, so o has more inputs than v has outputs and AutoAWQ does not scale o
 * (`v_proj.weight.shape == o_proj.weight.shape`); neither does lithe (`canScale`).
 */
import { DenseLinear, type LinearModule, type LinearSlot, type LlamaLayer, type Tensor } from '@lithe/core';

export type AwqGroup = 'qkv' | 'o' | 'gateUp' | 'down';
export const AWQ_GROUPS: readonly AwqGroup[] = ['qkv', 'o', 'gateUp', 'down'];
export const GROUP_SLOTS: Readonly<Record<AwqGroup, readonly LinearSlot[]>> = { qkv: ['q', 'k', 'v'], o: ['o'], gateUp: ['gate', 'up'], down: ['down'] };

function f32Of(t: Tensor, what: string): Float32Array {
  if (t.dtype !== 'f32') throw new Error(`awq: ${what} is ${t.dtype}; AWQ folds its scales into f32 weights: load the model with dtype 'f32'`);
  return (t.handle as Float32Array).subarray(0, t.size);
}

export function denseOf(m: LinearModule | null, what: string): DenseLinear {
  if (!m) throw new Error(`awq: ${what} does not exist (the layer reads another layer's keys and values); AWQ runs on models whose every layer has its own`);
  if (!(m instanceof DenseLinear)) throw new Error(`awq: ${what} is already a ${m.constructor.name}; quantize a model with float weights (no other weight plugin)`);
  return m;
}

/** Whether the group's scale can be folded into its producer in this layer. */
export function canScale(layer: LlamaLayer, group: AwqGroup): boolean {
  return group !== 'o' || (!!layer.v && layer.v.outFeatures === layer.o.inFeatures);
}

/** Divides output rows of a linear (and its bias) by s. */
function divideRows(m: DenseLinear, s: Float32Array, what: string): void {
  const w = f32Of(m.weight, `${what}'s weight`);
  const inF = m.inFeatures;
  for (let o = 0; o < m.outFeatures; o++) for (let i = 0; i < inF; i++) w[o * inF + i] /= s[o];
  if (m.bias) {
    const b = f32Of(m.bias, `${what}'s bias`);
    for (let o = 0; o < b.length; o++) b[o] /= s[o];
  }
}

/** Folds scales s (one per input channel of the group) into block `l`'s weights, in place. */
export function foldScales(layer: LlamaLayer, l: number, group: AwqGroup, s: Float32Array): void {
  if (!canScale(layer, group)) throw new Error(`awq: block ${l}'s o cannot be scaled: v has ${layer.v?.outFeatures} outputs and o ${layer.o.inFeatures} inputs (grouped-query attention)`);
  const slots = GROUP_SLOTS[group];
  const width = denseOf(layer[slots[0]], `block ${l}'s ${slots[0]}`).inFeatures;
  if (s.length !== width) throw new RangeError(`awq: ${s.length} scales for block ${l}'s ${group}, whose input has ${width} channels`);
  // The producer first, so a refusal leaves the block unchanged.
  if (group === 'qkv' || group === 'gateUp') {
    const norm = f32Of(group === 'qkv' ? layer.attnNorm : layer.mlpNorm, `block ${l}'s ${group === 'qkv' ? 'attention' : 'MLP'} norm`);
    for (let i = 0; i < width; i++) norm[i] /= s[i];
  } else {
    const producer = group === 'o' ? 'v' : 'up';
    divideRows(denseOf(layer[producer], `block ${l}'s ${producer}`), s, `block ${l}'s ${producer}`);
  }
  for (const slot of slots) {
    const m = denseOf(layer[slot], `block ${l}'s ${slot}`);
    const w = f32Of(m.weight, `block ${l}'s ${slot} weight`);
    for (let o = 0; o < m.outFeatures; o++) for (let i = 0; i < width; i++) w[o * width + i] *= s[i];
  }
}
