// The load flags add the plugin a directory's quantization_config names.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { pipelineOptions } from './options.js';

const root = mkdtempSync(join(tmpdir(), 'lithe-qplugins-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('pipelineOptions for quantized directories', () => {
  for (const [method, q, plugin] of [
    ['gptq', { quant_method: 'gptq', bits: 4, group_size: 128, desc_act: true }, 'gptq'],
    ['awq', { quant_method: 'awq', bits: 4, group_size: 128, zero_point: true, version: 'gemm' }, 'awq'],
    ['bitsandbytes', { quant_method: 'bitsandbytes', load_in_4bit: true }, 'nf4'],
  ] as const) {
    it(`${method} gets ${plugin}()`, async () => {
      const model = mkdtempSync(join(root, `${method}-`));
      writeFileSync(join(model, 'config.json'), JSON.stringify({ model_type: 'llama', quantization_config: q }));
      const opts = await pipelineOptions({ model, backend: 'cpu', dtype: 'auto' });
      expect(opts.plugins.map((p) => p.name)).toEqual([plugin]);
    });
  }

  it('an AWQ layout it cannot read fails with the reason', async () => {
    const model = mkdtempSync(join(root, 'gemv-'));
    writeFileSync(join(model, 'config.json'), JSON.stringify({ model_type: 'llama', quantization_config: { quant_method: 'awq', version: 'gemv' } }));
    await expect(pipelineOptions({ model, backend: 'cpu', dtype: 'auto' })).rejects.toThrow(/version 'gemv' is not supported/);
  });
});
