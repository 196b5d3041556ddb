import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createPipeline, loadHFDir, type Pipeline } from '@lithe/core';
import { nodeModelFiles } from '@lithe/core/node';
import { afterAll, describe, expect, it } from 'vitest';
import { fileReader, readQuantized } from './checkpoint.js';
import { FourBitLinear } from './four-bit-weights.js';
import { quantizeModelDir } from './node.js';
import { nf4, type Nf4Options } from './plugin.js';
import { quantize4bit } from './quantize.js';
import { freshRng, tinyModel } from '@lithe/core/testing';

const rng = freshRng();
console.log(`node.test seed ${rng.seed}`);

const root = await mkdtemp(join(tmpdir(), 'lithe-nf4-'));
afterAll(() => rm(root, { recursive: true, force: true }));

const tiny = tinyModel({ attention_bias: true }, 'F32', rng.seed);
const src = join(root, 'f32');
await tiny.write(src);

async function allLogits(p: Pipeline): Promise<Float32Array> {
  const cache = p.createCache(32);
  const out = (await p.backend.read(p.model.forward(Int32Array.from(p.encode('Once upon a time there was')), cache, { logits: 'all' }))) as Float32Array;
  cache.dispose();
  return out;
}

/** Bitwise equality of two arrays' bytes (fast on millions of elements, unlike a deep equal). */
function sameBytes(a: ArrayBufferView, b: ArrayBufferView): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

describe('quantizeModelDir, then loading the directory with nf4()', () => {
  for (const o of [{}, { type: 'fp4', doubleQuant: false }, { skipModules: [] }] as Nf4Options[]) {
    it(`${JSON.stringify(o)}: the file holds the exact 4-bit tensors and loads back to the same model`, async () => {
      const out = join(root, `q-${JSON.stringify(o).replace(/\W/g, '')}`);
      const report = await quantizeModelDir(src, out, o);
      expect(report.quantizedTensors).toBe(2 * 7 + (o.skipModules ? 1 : 0));
      // Small layers pay for a partly filled nested block and the offset: a little above 4.127.
      if (o.doubleQuant === false) expect(report.bitsPerParameter).toBe(4.5);
      else {
        expect(report.bitsPerParameter).toBeGreaterThan(4.127);
        expect(report.bitsPerParameter).toBeLessThan(4.14);
      }
      expect((await readdir(out)).sort()).toEqual(['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']);
      const config = JSON.parse(await readFile(join(out, 'config.json'), 'utf8'));
      expect(config.quantization_config).toMatchObject({ quant_method: 'bitsandbytes', load_in_4bit: true, bnb_4bit_quant_type: o.type ?? 'nf4', bnb_4bit_use_double_quant: o.doubleQuant ?? true });

      // Every quantized tensor reads back bit for bit; the rest is copied unchanged.
      const dir = await loadHFDir(nodeModelFiles(out));
      const file = dir.weights.get('model.norm.weight')!.file;
      const name = 'model.layers.1.mlp.down_proj.weight';
      const w = tiny.weights.get(name)!;
      const back = await readQuantized(fileReader(file), name, o.type ?? 'nf4');
      const again = quantize4bit(w, tiny.shapes.get(name)!, { type: o.type, doubleQuant: o.doubleQuant });
      expect(back).toEqual(again);
      expect(dir.weights.get(name)).toMatchObject({ dtype: 'u8', shape: [Math.ceil(w.length / 2), 1] });
      expect(sameBytes(await file.read('model.embed_tokens.weight'), tiny.weights.get('model.embed_tokens.weight')!)).toBe(true);
      await dir.close();

      // Loaded back: the same modules and bit-identical logits to quantizing at load time.
      const a = await createPipeline({ model: out, plugins: [nf4()], cacheSize: 32 });
      const b = await createPipeline({ model: tiny.files, plugins: [nf4(o)], cacheSize: 32 });
      expect(a.model.layers[0].q).toBeInstanceOf(FourBitLinear);
      expect((a.model.layers[0].q as FourBitLinear).bias).not.toBeNull();
      expect(a.model.weightBytes).toBe(b.model.weightBytes);
      expect(a.backend.memory.snapshot().current.weights).toBe(a.model.weightBytes);
      expect(sameBytes(await allLogits(a), await allLogits(b))).toBe(true);
      a.dispose();
      b.dispose();
    });
  }
});
