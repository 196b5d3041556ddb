// quantize and convert, run in process through their commander commands on a tiny random model.
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createPipeline, parseGGUF } from '@lithe/core';
import { openFileSource } from '@lithe/core/node';
import { writeRandomModel } from '../testing/random-model.js';
import { convertCommand } from './convert.js';
import { inspectCommand } from './inspect.js';
import { quantizeCommand } from './quantize.js';
import { pipelineOptions } from '../options.js';

let root: string;
let model: string;

async function run(cmd: ReturnType<typeof convertCommand>, args: string[]): Promise<Record<string, unknown>> {
  const lines: string[] = [];
  const spy = vi.spyOn(process.stdout, 'write').mockImplementation((s: string | Uint8Array) => {
    lines.push(String(s));
    return true;
  });
  try {
    await cmd.exitOverride().parseAsync([...args, '--json'], { from: 'user' });
  } finally {
    spy.mockRestore();
  }
  return JSON.parse(lines.join('')) as Record<string, unknown>;
}

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'lithe-quant-'));
  model = join(root, 'model');
  writeRandomModel(model);
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('lithe quantize', () => {
  for (const method of ['int8', 'int4'] as const) {
    it(`--method ${method} writes a directory that loads with no plugin`, async () => {
      const out = join(root, method);
      const r = await run(quantizeCommand(), ['--method', method, '--model', model, '--out', out]);
      const format = method === 'int8' ? 'q8_0' : 'q4_0';
      expect(r).toMatchObject({ format, quantized_tensors: 15 });
      const p = await createPipeline({ model: out, cacheSize: 32 });
      expect(p.model.layers[0].gate.bytes).toBe(96 * 2 * (format === 'q8_0' ? 34 : 18));
      expect(p.model.embed.dtype).toBe('f32');
      const f = await createPipeline({ model, cacheSize: 32 });
      const a = await p.generate('The jury said', { temperature: 0, maxTokens: 6, stopOnEos: false }).result;
      const b = await f.generate('The jury said', { temperature: 0, maxTokens: 6, stopOnEos: false }).result;
      if (method === 'int8') expect(a.tokenIds[0]).toBe(b.tokenIds[0]);
      p.dispose();
      f.dispose();
    });
  }
});

describe('lithe quantize --method nf4|fp4', () => {
  it('writes a bitsandbytes-layout directory that the CLI loads with nf4() by itself', async () => {
    const out = join(root, 'nf4');
    const r = await run(quantizeCommand(), ['--method', 'nf4', '--model', model, '--out', out]);
    // q, k, v, o, gate, up and down of two layers; lm_head stays full precision by default.
    expect(r).toMatchObject({ format: 'nf4', quantized_tensors: 14 });
    expect(r.bits_per_parameter).toBeGreaterThan(4.12);
    expect(r.bits_per_parameter).toBeLessThan(4.2);
    await expect(createPipeline({ model: out })).rejects.toThrow(/4-bit bitsandbytes weights: load it with the nf4\(\) plugin/);
    const opts = await pipelineOptions({ model: out, backend: 'cpu', dtype: 'auto' });
    expect(opts.plugins.map((p) => p.name)).toEqual(['nf4']);
    const p = await createPipeline({ ...opts, cacheSize: 32 });
    expect(p.model.layers[0].q.bytes).toBeLessThan((64 * 64 * 4.2) / 8); // vs 64 × 64 × 4 bytes in f32
    expect((await p.generate('The jury said', { temperature: 0, maxTokens: 4, stopOnEos: false }).result).completionTokens).toBe(4);
    expect(p.model.layers[0].gate.dtype).toBe('nf4'); // what bench reports as dtype
    p.dispose();
    const inspected = await run(inspectCommand(), ['--model', out]);
    expect(inspected.weight_format).toBe('nf4');
    expect((await run(inspectCommand(), ['--model', join(root, 'int8')])).weight_format).toBe('q8_0');
    expect((await run(inspectCommand(), ['--model', model])).weight_format).toBe('f32');
  });
});

describe('lithe convert', () => {
  for (const type of ['f32', 'f16', 'q8_0', 'q4_0'] as const) {
    it(`--type ${type} writes a GGUF file that loads back`, async () => {
      const out = join(root, `model-${type}.gguf`);
      const r = await run(convertCommand(), ['--model', model, '--to', 'gguf', '--type', type, '--out', out]);
      expect(r.bytes).toBe(statSync(out).size);
      const file = await parseGGUF(await openFileSource(out));
      expect(file.tensors.get('blk.0.ffn_up.weight')?.typeName).toBe(type.toUpperCase());
      await file.source.close?.();
      const p = await createPipeline({ model: out, cacheSize: 32 });
      if (type === 'f32') {
        const f = await createPipeline({ model, cacheSize: 32 });
        const opts = { temperature: 0, maxTokens: 6, stopOnEos: false };
        expect((await p.generate('The jury said', opts).result).tokenIds).toEqual((await f.generate('The jury said', opts).result).tokenIds);
        f.dispose();
      }
      p.dispose();
    });
  }

  it('inspect reads a GGUF file as it reads the directory it came from', async () => {
    const out = join(root, 'model-q8_0.gguf');
    await run(convertCommand(), ['--model', model, '--to', 'gguf', '--type', 'q8_0', '--out', out]);
    const [fromDir, fromGguf] = [await run(inspectCommand(), ['--model', model]), await run(inspectCommand(), ['--model', out])];
    expect(fromGguf.parameters).toBe(fromDir.parameters);
    // 2 layers × 7 matrices, lm_head and the embedding in q8_0; the norms stay f32.
    expect((fromGguf.tensors as Record<string, { count: number }>).q8_0.count).toBe(16);
  });

  it('says why an nf4 directory cannot become GGUF, and a failed run leaves no file behind', async () => {
    const nf4Dir = join(root, 'nf4-for-convert');
    await run(quantizeCommand(), ['--method', 'nf4', '--model', model, '--out', nf4Dir]);
    const out = join(root, 'from-nf4.gguf');
    await expect(run(convertCommand(), ['--model', nf4Dir, '--out', out])).rejects.toThrow(/holds 4-bit bitsandbytes \(nf4\/fp4\) weights, which GGUF has no tensor type for/);
    expect(readdirSync(root).filter((f) => f.startsWith('from-nf4'))).toEqual([]);
    // A run that fails after writing (here: the final name is taken by a directory) removes its partial file.
    const blocked = join(root, 'blocked.gguf');
    mkdirSync(blocked);
    await expect(run(convertCommand(), ['--model', model, '--type', 'q8_0', '--out', blocked])).rejects.toThrow();
    expect(readdirSync(root).filter((f) => f.startsWith('blocked.gguf'))).toEqual(['blocked.gguf']);
  });

  it('quantize --json has the same keys for every method', async () => {
    const keys = async (method: string) => Object.keys(await run(quantizeCommand(), ['--method', method, '--model', model, '--out', join(root, `keys-${method}`)])).sort();
    const int8 = await keys('int8');
    expect(int8).toEqual(['bits_per_parameter', 'format', 'input_bytes', 'model', 'out', 'output_bytes', 'quantized_tensors', 'seconds']);
    for (const m of ['int4', 'nf4', 'fp4']) expect(await keys(m)).toEqual(int8);
  });

  it('refuses an output name without .gguf', async () => {
    await expect(run(convertCommand(), ['--model', model, '--out', join(root, 'x.bin')])).rejects.toThrow(/must end in .gguf/);
  });
});
