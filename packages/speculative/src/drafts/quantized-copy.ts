import { DenseLinear, LlamaModel, decodeHalfInto, dequantize, quantizeQ4_0, quantizeQ8_0, type BlockFormat, type LayerWeights, type LinearModule, type Tensor } from '@lithe/core';

export type SelfDraftFormat = 'q8_0' | 'q4_0';

/** A weight's values as f32, whatever its dtype (floats, or a block format core can dequantize). */
async function readF32(t: Tensor): Promise<Float32Array> {
  const data = await t.backend.read(t);
  if (t.dtype === 'f32') return data as Float32Array;
  if (t.dtype === 'f16' || t.dtype === 'bf16') {
    const out = new Float32Array(t.size);
    decodeHalfInto(data as Uint16Array, t.dtype as "f16" | "bf16", out);
    return out;
  }
  const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return dequantize(t.dtype as BlockFormat, bytes);
}

/**
 * A copy of `target` with its linear layers and lm_head quantized to q8_0 or q4_0 (gpt-fast's
 * self-speculation: the int8 copy drafts for the model it came from). Embedding and norms are shared
 * with the target; a linear that is not a plain dense weight (a plugin's module) or whose rows do
 * not fill whole 32-value blocks is shared as it is. `dispose` frees only what the copy made.
 */
export async function quantizedCopy(target: LlamaModel, format: SelfDraftFormat): Promise<{ model: LlamaModel; dispose(): void }> {
  const b = target.backend;
  if (!b.supportsOp('linear', format)) {
    throw new Error(`speculative: backend '${b.name}' has no ${format} linear kernel, so it cannot run a self-${format === 'q8_0' ? 'int8' : 'int4'} draft; use the cpu or wasm backend, a draft model, or prompt lookup`);
  }
  const made: Tensor[] = [];
  const quantize = format === 'q8_0' ? quantizeQ8_0 : quantizeQ4_0;
  const copy = async (m: LinearModule): Promise<LinearModule> => {
    if (!(m instanceof DenseLinear) || m.inFeatures % 32 !== 0) return m;
    const q = b.upload(quantize(await readF32(m.weight)), m.weight.shape, format, 'weights');
    made.push(q);
    return new DenseLinear(`${m.name}.draft`, b, q, m.bias);
  };
  const layers: LayerWeights[] = [];
  for (const l of target.layers) {
    layers.push({
      attnNorm: l.attnNorm,
      q: await copy(l.q),
      k: l.k && (await copy(l.k)),
      v: l.v && (await copy(l.v)),
      o: await copy(l.o),
      qBias: null,
      kBias: null,
      vBias: null,
      mlpNorm: l.mlpNorm,
      gate: await copy(l.gate),
      up: await copy(l.up),
      down: await copy(l.down),
    });
  }
  const lmHead = await copy(target.lmHead);
  const model = new LlamaModel(target.config, b, { embed: target.embed, layers, norm: target.norm, lmHead }, target.maxChunk);
  return {
    model,
    dispose: () => {
      model.releaseActivations();
      for (const t of made.splice(0)) t.dispose();
    },
  };
}
