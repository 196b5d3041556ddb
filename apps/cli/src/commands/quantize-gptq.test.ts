// lithe quantize --method gptq|rtn, run in process through the commander command on a tiny random model.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createPipeline, GroupedIntLinear } from '@lithe/core';
import { writeRandomModel } from '../testing/random-model.js';
import { pipelineOptions } from '../options.js';
import { quantizeCommand } from './quantize.js';

let root: string;
let model: string;
let calibration: string;

async function run(args: string[]): Promise<Record<string, unknown>> {
  const lines: string[] = [];
  const spy = vi.spyOn(process.stdout, 'write').mockImplementation((s: string | Uint8Array) => {
    lines.push(String(s));
    return true;
  });
  try {
    await quantizeCommand().exitOverride().parseAsync([...args, '--json'], { from: 'user' });
  } finally {
    spy.mockRestore();
  }
  return JSON.parse(lines.join('')) as Record<string, unknown>;
}

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'lithe-quant-gptq-'));
  model = join(root, 'model');
  writeRandomModel(model);
  calibration = join(root, 'calibration.txt');
  writeFileSync(calibration, 'The jury said the election was conducted well, and the city praised the committee for it. '.repeat(8));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('lithe quantize --method gptq|rtn', () => {
  it('gptq writes an AutoGPTQ-layout directory that the CLI loads with gptq() by itself', async () => {
    const out = join(root, 'gptq');
    const r = await run(['--method', 'gptq', '--bits', '4', '--group-size', '32', '--act-order', '--calibration', calibration, '--samples', '4', '--seq-len', '32', '--model', model, '--out', out]);
    expect(r).toMatchObject({ format: 'gptq', bits: 4, group_size: 32, act_order: true, sym: false, quantized_tensors: 14, calibration: { samples: 4, seq_len: 32 } });
    // 4-bit codes, plus per 32 weights an f16 scale and a 4-bit zero, plus g_idx.
    expect(r.bits_per_parameter).toBeGreaterThan(4.5);
    expect(r.bits_per_parameter).toBeLessThan(5.5);
    const config = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
    expect(config.quantization_config).toMatchObject({ quant_method: 'gptq', bits: 4, group_size: 32, desc_act: true });
    await expect(createPipeline({ model: out })).rejects.toThrow(/holds GPTQ weights .*: load it with the gptq\(\) plugin/);
    const opts = await pipelineOptions({ model: out, backend: 'cpu', dtype: 'auto' });
    expect(opts.plugins.map((p) => p.name)).toEqual(['gptq']);
    const p = await createPipeline({ ...opts, cacheSize: 32 });
    expect(p.model.layers[1].down).toBeInstanceOf(GroupedIntLinear);
    expect((await p.generate('The jury said', { temperature: 0, maxTokens: 4, stopOnEos: false }).result).completionTokens).toBe(4);
    p.dispose();
  });

  it('rtn needs no calibration and writes the same layout', async () => {
    const out = join(root, 'rtn');
    const r = await run(['--method', 'rtn', '--bits', '3', '--group-size', '-1', '--sym', '--model', model, '--out', out]);
    expect(r).toMatchObject({ format: 'rtn', bits: 3, group_size: -1, sym: true, calibration: null, quantized_tensors: 14 });
    expect(JSON.parse(readFileSync(join(out, 'quantize_config.json'), 'utf8'))).toMatchObject({ quant_method: 'gptq', bits: 3, group_size: -1, sym: true, meta: { quantizer: 'lithe:rtn' } });
    const p = await createPipeline({ ...(await pipelineOptions({ model: out, backend: 'cpu', dtype: 'auto' })), cacheSize: 32 });
    expect(p.model.layers[0].q).toBeInstanceOf(GroupedIntLinear);
    p.dispose();
  });

  it('explains a missing calibration file', async () => {
    await expect(run(['--method', 'gptq', '--model', model, '--out', join(root, 'x')])).rejects.toThrow(/--method gptq needs --calibration FILE/);
  });
});
