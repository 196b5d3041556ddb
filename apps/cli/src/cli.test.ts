// Runs the built CLI (dist/bin.js) against a tiny random model and checks it against the core API.
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPipeline, type ChatMessage, type GenerateOptions, type Pipeline } from '@lithe/core';
import { TINY_CONFIG, writeRandomModel } from './testing/random-model.js';

const BIN = fileURLToPath(new URL('../dist/bin.js', import.meta.url));

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function lithe(args: string[], { input = '', env = {} }: { input?: string; env?: Record<string, string> } = {}): Promise<Run> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [BIN, ...args], { env: { ...process.env, LITHE_DEBUG: '', ...env }, maxBuffer: 1 << 26 }, (err, stdout, stderr) =>
      resolve({ code: err ? Number(err.code ?? 1) : 0, stdout, stderr }),
    );
    child.stdin!.end(input);
  });
}

async function json(args: string[]): Promise<Record<string, unknown>> {
  const r = await lithe([...args, '--json']);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  return JSON.parse(r.stdout) as Record<string, unknown>;
}

let root: string;
let model: string;
let pipeline: Pipeline;

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'lithe-cli-'));
  model = join(root, 'model');
  writeRandomModel(model);
  pipeline = await createPipeline({ model });
});

afterAll(() => {
  pipeline?.dispose();
  if (root) rmSync(root, { recursive: true, force: true });
});

const PROMPT = 'Once upon a time';

describe('generate', () => {
  it('--json --temperature 0 reports every field, is deterministic and matches the core API', async () => {
    const args = ['generate', '--model', model, '--prompt', PROMPT, '--temperature', '0', '--max-tokens', '8'];
    const [a, b] = [await json(args), await json(args)];
    const expected = await pipeline.generate(PROMPT, { temperature: 0, maxTokens: 8 }).result;

    expect(Object.keys(a).sort()).toEqual(
      ['completion_tokens', 'decode_tok_s', 'finish_reason', 'peak_memory_bytes', 'prefill_tok_s', 'prompt_tokens', 'text', 'token_ids', 'ttft_ms'].sort(),
    );
    expect(a.prompt_tokens).toBe(pipeline.encode(PROMPT).length);
    expect(a.completion_tokens).toBe(8);
    expect(a.finish_reason).toBe('length');
    for (const k of ['ttft_ms', 'prefill_tok_s', 'decode_tok_s', 'peak_memory_bytes']) expect(a[k]).toBeGreaterThan(0);
    expect(a.token_ids).toEqual(b.token_ids);
    expect(a.token_ids).toEqual(expected.tokenIds);
    expect(a.text).toBe(expected.text);
  });

  it('streams the completion to stdout and stops at --max-tokens', async () => {
    const r = await lithe(['generate', '-m', model, '-p', PROMPT, '--temperature', '0', '--max-tokens', '5']);
    const expected = await pipeline.generate(PROMPT, { temperature: 0, maxTokens: 5 }).result;
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(expected.text + '\n');
    expect(r.stderr).toContain('5 generated tokens');
    expect((await json(['generate', '-m', model, '-p', PROMPT, '-t', '0', '-n', '5'])).completion_tokens).toBe(5);
  });

  it('the same seed gives the same sample at temperature 1, another seed another', async () => {
    const args = (seed: string) => ['generate', '-m', model, '-p', PROMPT, '--temperature', '1', '--seed', seed, '-n', '12'];
    const [a, b, c] = [await json(args('42')), await json(args('42')), await json(args('43'))];
    expect(a.text).toBe(b.text);
    expect(a.token_ids).toEqual(b.token_ids);
    expect(a.token_ids).not.toEqual(c.token_ids);
  });

  it('takes sampling defaults from generation_config.json', async () => {
    // The model's file says temperature 0.8, top_p 0.95.
    const a = await json(['generate', '-m', model, '-p', PROMPT, '--seed', '7', '-n', '10', '--backend', 'cpu']);
    const expected = await pipeline.generate(PROMPT, { temperature: 0.8, topP: 0.95, seed: 7, maxTokens: 10 }).result;
    expect(a.token_ids).toEqual(expected.tokenIds);
  });
});

describe('perplexity', () => {
  it('--json equals pipeline.perplexity for the same file and context', async () => {
    const text = 'The quick brown fox jumps over the lazy dog. '.repeat(12);
    const file = join(root, 'text.txt');
    writeFileSync(file, text);
    const r = await json(['perplexity', '-m', model, '--file', file, '--context', '32', '--backend', 'cpu']);
    const expected = await pipeline.perplexity(text, { context: 32 });
    expect(r.perplexity).toBe(expected.perplexity);
    expect(r.mean_nll).toBe(expected.meanNll);
    expect(r.tokens).toBe(expected.tokens);
    expect(r.context).toBe(32);
    expect(r.seconds).toBeGreaterThan(0);

    const human = await lithe(['perplexity', '-m', model, '-f', file, '-c', '32']);
    expect(human.stdout).toMatch(/^perplexity\s+[\d,.]+$/m);
    expect(human.stdout).toContain(`tokens scored  ${expected.tokens}`);
  });
});

describe('inspect', () => {
  // By hand for TINY_CONFIG: D 64, I 96, 2 layers, 4 heads of 16, 2 KV heads, vocab 32000, untied.
  const embed = 32000 * 64;
  const layer = 64 * 64 + 2 * (64 * 32) + 64 * 64 + 3 * 64 * 96 + 2 * 64;
  const params = 2 * embed + 2 * layer + 64;
  const kvPerToken = 2 * 2 * 2 * 16 * 4; // K and V, layers, KV heads, head dim, f32

  it('--json reports the architecture, parameters and memory', async () => {
    const r = await json(['inspect', '-m', model]);
    expect(params).toBe(4_157_760);
    expect(r.parameters).toBe(params);
    expect(r.weight_bytes).toBe(params * 4);
    expect(r.tensors).toEqual({ f32: { count: 3 + 2 * 9, bytes: params * 4 } });
    expect(r).toMatchObject({ model_type: 'llama', architectures: ['LlamaForCausalLM'], layers: 2, heads: 4, kv_heads: 2, head_dim: 16, hidden_size: 64, vocab_size: 32000 });
    expect(r).toMatchObject({ context_length: TINY_CONFIG.max_position_embeddings, tied_embeddings: false, rope_theta: 10000 });
    const m = r.memory as Record<string, number>;
    expect(m.kv_bytes_per_token).toBe(kvPerToken);
    expect(m.kv_bytes).toBe(kvPerToken * 512);
    expect(m.total_bytes).toBe(params * 4 + kvPerToken * 512 + m.activation_bytes);

    const sized = (await json(['inspect', '-m', model, '--context', '100', '--batch', '2'])).memory as Record<string, number>;
    expect(sized.kv_bytes).toBe(kvPerToken * 100 * 2);
    // Rows x (3D + 2q + 2kv + 2I) f32 activations plus a row of logits, per sequence.
    expect(sized.activation_bytes).toBe(4 * 2 * (100 * (3 * 64 + 2 * 64 + 2 * 32 + 2 * 96) + 32000));
  });

  it('prints a table', async () => {
    const r = await lithe(['inspect', '-m', model]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^parameters\s+4\.16M \(4157760\)$/m);
  });
});

describe('bench', () => {
  it('--json has every field with positive numbers and the requested token counts', async () => {
    const r = await json(['bench', '-m', model, '--prompt-tokens', '16', '--gen-tokens', '8']);
    // The default backend: wasm, or WebGPU on a machine with a GPU.
    expect(['wasm', 'webgpu']).toContain(r.backend);
    expect(r).toMatchObject({ model: 'model', model_type: 'llama', dtype: 'f32', params: 4_157_760, prompt_tokens: 16, gen_tokens: 8 });
    for (const k of ['ttft_ms', 'prefill_tok_s', 'decode_tok_s', 'weight_bytes', 'kv_bytes', 'peak_memory_bytes', 'achieved_gb_s']) expect(r[k]).toBeGreaterThan(0);
    expect(r.weight_bytes).toBe(4_157_760 * 4);
    // The cache holds prompt + generated tokens.
    expect(r.kv_bytes).toBe(512 * 24);
  });

  it('--kv-quant int8 and --cache-size size the quantized cache', async () => {
    const r = await json(['bench', '-m', model, '--prompt-tokens', '16', '--gen-tokens', '8', '--kv-quant', 'int8', '--cache-size', '64']);
    // 2 layers × K and V × 2 KV heads × (16 one-byte codes + f16 scale + f16 zero) per token.
    expect(r).toMatchObject({ kv_cache: 'int8', kv_bytes: 64 * 2 * 2 * 2 * (16 + 4) });
    const small = await lithe(['bench', '-m', model, '--prompt-tokens', '16', '--gen-tokens', '8', '--cache-size', '20']);
    expect(small.code).toBe(1);
    expect(small.stderr).toMatch(/--cache-size 20 is smaller than the prompt and generated tokens \(24 tokens\)/);
  });
});

describe('--kv-quant', () => {
  it('generate and perplexity run on a quantized cache close to the f32 one', async () => {
    const g = await json(['generate', '-m', model, '-p', PROMPT, '-t', '0', '-n', '4', '--kv-quant', 'int8']);
    expect(g.completion_tokens).toBe(4);
    const file = join(root, 'kvq.txt');
    writeFileSync(file, 'It was a bright cold day in April, and the clocks were striking thirteen.');
    const [fp, q] = [await json(['perplexity', '-m', model, '-f', file, '-c', '16']), await json(['perplexity', '-m', model, '-f', file, '-c', '16', '--kv-quant', 'int8'])];
    expect(q.tokens).toBe(fp.tokens);
    expect(Math.abs((q.perplexity as number) / (fp.perplexity as number) - 1)).toBeLessThan(0.05);
  });
});

describe('chat', () => {
  const greedy: GenerateOptions = { temperature: 0, maxTokens: 6 };
  const reply = async (messages: ChatMessage[], opts: GenerateOptions = {}) => (await pipeline.chat(messages, { ...greedy, ...opts }).result).text;
  const args = () => ['chat', '-m', model, '-t', '0', '-n', '6'];

  it('answers each piped line with the conversation so far, and /reset clears it', async () => {
    const first = await reply([{ role: 'user', content: 'hello' }]);
    const second = await reply([{ role: 'user', content: 'hello' }, { role: 'assistant', content: first }, { role: 'user', content: 'hello' }]);
    expect(second).not.toBe(first);

    const r = await lithe(args(), { input: 'hello\nhello\n' });
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`${first}\n${second}\n`);
    const reset = await lithe(args(), { input: 'hello\n/reset\nhello\n/exit\nnot answered\n' });
    expect(reset.stdout).toBe(`${first}\n${first}\n`);
  });

  it('shortens replies to the room left in the KV cache and reports a full one', async () => {
    const messages = [{ role: 'user', content: 'hello' }];
    const promptTokens = pipeline.tokenizer.encode(pipeline.tokenizer.applyChatTemplate(messages), { addSpecialTokens: false }).length;
    const first = await reply(messages, { maxTokens: 30 - promptTokens });

    const r = await lithe(['chat', '-m', model, '-t', '0', '-n', '100', '--cache-size', '30'], { input: 'hello\nhello\n' });
    expect(r.stdout).toBe(`${first}\n`);
    expect(r.stderr).toMatch(/^error: the conversation \(\d+ tokens\) fills the KV cache \(30 tokens\); raise --cache-size\n$/);
    expect(r.code).toBe(1);
  });

  it('fails clearly for a model without a chat template', async () => {
    const dir = join(root, 'no-template');
    writeRandomModel(dir, { chatTemplate: false });
    const r = await lithe(['chat', '-m', dir]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('has no chat template');
  });
});

describe('errors', () => {
  it('a missing model directory exits 1 naming the path, without a stack trace', async () => {
    const missing = join(root, 'nope');
    for (const cmd of ['generate', 'inspect']) {
      const r = await lithe([cmd, '-m', missing, ...(cmd === 'generate' ? ['-p', 'x'] : [])]);
      expect(r.code).toBe(1);
      expect(r.stderr).toBe(`error: model directory ${missing} does not exist\n`);
    }
  });

  it('a directory that is not a model gets the loader\'s message', async () => {
    const empty = join(root, 'empty');
    mkdirSync(empty);
    const r = await lithe(['bench', '-m', empty]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^error: .*empty is not a model directory: config.json is missing/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    // LITHE_DEBUG=1 shows the stack.
    expect((await lithe(['bench', '-m', empty], { env: { LITHE_DEBUG: '1' } })).stderr).toMatch(/\n\s+at /);
  });

  it('invalid option values exit 1 naming the option', async () => {
    const r = await lithe(['generate', '-m', model, '-p', 'x', '--top-p', '2']);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('error: --top-p must be in (0, 1], got 2\n');
    const n = await lithe(['bench', '-m', model, '--gen-tokens', 'many']);
    expect(n.stderr).toBe("error: --gen-tokens must be a number, got 'many'\n");
  });

  it('--model is required', async () => {
    const r = await lithe(['inspect']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("required option '-m, --model <dir|file.gguf>' not specified");
  });
});

describe('serve', () => {
  it('serves the model until SIGTERM, then drains and exits 0', async () => {
    const { spawn } = await import('node:child_process');
    const child = spawn(process.execPath, [BIN, 'serve', '--model', model, '--port', '0', '--quiet', '--backend', 'cpu'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    const url = await new Promise<string>((resolve, reject) => {
      child.stderr.on('data', (d: Buffer) => {
        stderr += d.toString();
        const m = /listening on (\S+)/.exec(stderr);
        if (m && stderr.includes('model loaded')) resolve(m[1]);
      });
      child.on('exit', (code) => reject(new Error(`serve exited early (${code}): ${stderr}`)));
    });
    expect((await fetch(`${url}/health`)).status).toBe(200);
    const models = (await (await fetch(`${url}/v1/models`)).json()) as { data: { id: string }[] };
    expect(models.data.map((m) => m.id)).toEqual(['model']);
    const completion = (await (await fetch(`${url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'model', prompt: PROMPT, max_tokens: 4, temperature: 0 }) })).json()) as { usage: { completion_tokens: number } };
    expect(completion.usage.completion_tokens).toBe(4);
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
  });
});
