// lithe quantize --method awq, run in process through the commander command on a tiny random model.
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
  root = mkdtempSync(join(tmpdir(), 'lithe-quant-awq-'));
  model = join(root, 'model');
  writeRandomModel(model);
  calibration = join(root, 'calibration.txt');
  writeFileSync(calibration, 'The jury said the election was conducted well, and the city praised the committee for it. '.repeat(8));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('lithe quantize --method awq', () => {
  it('--duo-scaling searches scales from the weights too; the checkpoint loads and generates', async () => {
    const out = join(root, 'awq-duo');
    const args = ['--method', 'awq', '--group-size', '32', '--calibration', calibration, '--samples', '2', '--seq-len', '32', '--model', model];
    const r = await run([...args, '--duo-scaling', '--out', out]);
    expect(r).toMatchObject({ format: 'awq', group_size: 32, quantized_tensors: 14 });
    // Even at α = 0 duo scaling scales by the weights, so the checkpoint differs from one without it.
    await run([...args, '--out', join(root, 'awq-plain')]);
    expect(readFileSync(join(out, 'model.safetensors')).equals(readFileSync(join(root, 'awq-plain', 'model.safetensors')))).toBe(false);
    const p = await createPipeline({ ...(await pipelineOptions({ model: out, backend: 'cpu', dtype: 'auto' })), cacheSize: 32 });
    expect((await p.generate('The jury said', { temperature: 0, maxTokens: 3, stopOnEos: false }).result).completionTokens).toBe(3);
    p.dispose();
    await expect(run(['--method', 'gptq', '--duo-scaling', '--calibration', calibration, '--model', model, '--out', join(root, 'x')])).rejects.toThrow(/--duo-scaling applies to --method awq, not gptq/);
  });

  it('writes an AutoAWQ GEMM directory that the CLI loads with awq() by itself, and reports the α per block', async () => {
    const out = join(root, 'awq');
    const r = await run(['--method', 'awq', '--group-size', '32', '--calibration', calibration, '--samples', '3', '--seq-len', '32', '--search-samples', '2', '--model', model, '--out', out]);
    expect(r).toMatchObject({ format: 'awq', bits: 4, group_size: 32, zero_point: true, quantized_tensors: 14, calibration: { samples: 3, seq_len: 32 } });
    // 4-bit codes, plus per 32 weights an f16 scale and a 4-bit zero.
    expect(r.bits_per_parameter).toBeCloseTo(4 + 20 / 32, 6);
    const alpha = r.alpha as Record<string, number | null>[];
    expect(alpha.length).toBe(2);
    for (const a of alpha) {
      expect(a.o).toBeNull(); // grouped-query attention: o is not scaled
      for (const g of ['qkv', 'gateUp', 'down']) expect([0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95]).toContain(a[g]);
    }
    const config = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
    expect(config.quantization_config).toMatchObject({ quant_method: 'awq', bits: 4, group_size: 32, zero_point: true, version: 'gemm' });
    await expect(createPipeline({ model: out })).rejects.toThrow(/holds AWQ weights .*: load it with the awq\(\) plugin/);
    const opts = await pipelineOptions({ model: out, backend: 'cpu', dtype: 'auto' });
    expect(opts.plugins.map((p) => p.name)).toEqual(['awq']);
    const p = await createPipeline({ ...opts, cacheSize: 32 });
    expect(p.model.layers[1].down).toBeInstanceOf(GroupedIntLinear);
    expect((await p.generate('The jury said', { temperature: 0, maxTokens: 4, stopOnEos: false }).result).completionTokens).toBe(4);
    p.dispose();
  });

  it('explains what it needs', async () => {
    await expect(run(['--method', 'awq', '--model', model, '--out', join(root, 'x')])).rejects.toThrow(/--method awq needs --calibration FILE/);
    await expect(run(['--method', 'awq', '--bits', '3', '--calibration', calibration, '--model', model, '--out', join(root, 'x')])).rejects.toThrow(/--method awq is 4-bit/);
    await expect(run(['--method', 'awq', '--group-size', '48', '--calibration', calibration, '--model', model, '--out', join(root, 'x')])).rejects.toThrow(/group size 48 does not divide the 64 inputs/);
  });
});
