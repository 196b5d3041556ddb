// Runs the built CLI (dist/bin.js) against a tiny random model and checks it against the core API.
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BUILTIN_CHAT_TEMPLATES, createPipeline, type ChatMessage, type GenerateOptions, type Pipeline } from '@lithe/core';
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
  // --backend auto (the default) says once what it chose; nothing else goes to stderr.
  const loadsBackend = !['inspect', 'quantize', 'convert'].includes(args[0]) && !args.includes('--backend');
  expect(r.stderr).toMatch(loadsBackend ? /^backend: (wasm|webgpu) \([^\n]*\)\n$/ : /^$/);
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
      ['backend', 'completion_tokens', 'decode_tok_s', 'finish_reason', 'peak_memory_bytes', 'prefill_tok_s', 'prompt_tokens', 'text', 'threads', 'token_ids', 'ttft_ms'].sort(),
    );
    expect(['wasm', 'webgpu']).toContain(a.backend);
    if (a.backend === 'wasm') expect(a.threads).toBeGreaterThanOrEqual(1);
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

  it('--stop decodes escapes (\\n, \\t, \\uHHHH)', async () => {
    const full = (await pipeline.generate(PROMPT, { temperature: 0, maxTokens: 12 }).result).text;
    // Two characters the text really has, written as escapes: matched only once decoded.
    const cut = full.slice(3, 5);
    const escaped = cut.split('').map((ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`).join('');
    const a = await json(['generate', '-m', model, '-p', PROMPT, '-t', '0', '-n', '12', '--stop', escaped]);
    expect(a.text).toBe(full.slice(0, full.indexOf(cut)));
    expect(a.finish_reason).toBe('stop');
  });

  it('--cache-size past the context length is refused, as --backend cpu says nothing on stderr', async () => {
    const r = await lithe(['generate', '-m', model, '-p', PROMPT, '--cache-size', '8192']);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe("error: --cache-size (8192 tokens) exceeds the model's context length (max_position_embeddings 512); use at most 512\n");
    const cpu = await lithe(['generate', '-m', model, '-p', PROMPT, '-n', '2', '--backend', 'cpu', '--json']);
    expect(cpu.stderr).toBe('');
    expect(JSON.parse(cpu.stdout)).toMatchObject({ backend: 'cpu', threads: 1 });
  });
});

describe('perplexity', () => {
  it('--json equals pipeline.perplexity for the same file and context', async () => {
    const text = 'The quick brown fox jumps over the lazy dog. '.repeat(12);
    const file = join(root, 'text.txt');
    writeFileSync(file, text);
    const r = await json(['perplexity', '-m', model, '--file', file, '--context', '32']);
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
  const kvPerToken = 2 * 2 * 2 * 16 * 2; // K and V, layers, KV heads, head dim, f16

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
    // One step's rows (the batch's stacked, at most a 256-row chunk) x (3D + 2q + 2kv + 2I) f32
    // activations, plus a row of logits per sequence.
    expect(sized.activation_bytes).toBe(4 * (200 * (3 * 64 + 2 * 64 + 2 * 32 + 2 * 96) + 2 * 32000));
    const f32Cache = (await json(['inspect', '-m', model, '--context', '100', '--kv-dtype', 'f32'])).memory as Record<string, number>;
    expect(f32Cache).toMatchObject({ kv_dtype: 'f32', kv_bytes_per_token: kvPerToken * 2, kv_bytes: kvPerToken * 2 * 100 });
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
    // Which build of the wasm kernels runs: relaxed SIMD where the runtime validates it (Node ≥ 22).
    if (r.backend === 'wasm') expect(r.kernels).toBe(Number(process.versions.node.split('.')[0]) >= 22 ? 'relaxed-simd' : 'simd128');
    expect(r).toMatchObject({ model: 'model', model_type: 'llama', dtype: 'f32', params: 4_157_760, prompt_tokens: 16, gen_tokens: 8 });
    for (const k of ['ttft_ms', 'prefill_tok_s', 'decode_tok_s', 'weight_bytes', 'kv_bytes', 'peak_memory_bytes', 'achieved_gb_s']) expect(r[k]).toBeGreaterThan(0);
    expect(r.weight_bytes).toBe(4_157_760 * 4);
    // The cache holds prompt + generated tokens: 2 layers x K and V x 32 values x 2 bytes (f16) per token.
    expect(r).toMatchObject({ kv_cache: 'f16', kv_bytes: 256 * 24, batch: 1 });
    expect(r.decode_tok_s_per_sequence).toBeCloseTo(r.decode_tok_s as number, 6);
  });

  it('--batch decodes sequences together and --kv-dtype f32 doubles the cache', async () => {
    const r = await json(['bench', '-m', model, '--prompt-tokens', '16', '--gen-tokens', '8', '--batch', '3', '--kv-dtype', 'f32', '--warmup', '0']);
    expect(r).toMatchObject({ batch: 3, kv_cache: 'f32', gen_tokens: 8, kv_bytes: 3 * 512 * 24 });
    // The aggregate rate counts every sequence's tokens: about batch x the rate each one saw.
    expect(r.decode_tok_s as number).toBeGreaterThan(2 * (r.decode_tok_s_per_sequence as number));
  });

  it('--flash-attn runs the flash kernels: the same greedy tokens as core attention, and bench says which ran', async () => {
    const args = ['generate', '--model', model, '--backend', 'wasm', '--prompt', PROMPT, '--temperature', '0', '--max-tokens', '12', '--kv-dtype', 'f32'];
    const [core, flash] = [await json(args), await json([...args, '--flash-attn'])];
    expect(flash.token_ids).toEqual(core.token_ids);
    expect(flash.text).toBe(core.text);
    const b = await json(['bench', '-m', model, '--backend', 'wasm', '--prompt-tokens', '16', '--gen-tokens', '4', '--flash-attn', '--warmup', '0']);
    expect(b).toMatchObject({ backend: 'wasm', attention: 'flash' });
    // On the CPU backend there is no flash kernel: one notice line, core's attention runs.
    const cpu = await lithe(['generate', '--model', model, '--backend', 'cpu', '--prompt', PROMPT, '--temperature', '0', '--max-tokens', '4', '--flash-attn', '--json']);
    expect(cpu.code).toBe(0);
    expect(cpu.stderr).toMatch(/^flash-attn: no flash kernel for the 'cpu' backend[^\n]*\n$/);
  });

  it('--kv-quant int8 and --cache-size size the quantized cache', async () => {
    const r = await json(['bench', '-m', model, '--prompt-tokens', '16', '--gen-tokens', '8', '--kv-quant', 'int8', '--cache-size', '64']);
    // 2 layers × K and V × 2 KV heads × (16 one-byte codes + f16 scale + f16 zero) per token.
    expect(r).toMatchObject({ kv_cache: 'int8', kv_bytes: 64 * 2 * 2 * 2 * (16 + 4) });
    const small = await lithe(['bench', '-m', model, '--prompt-tokens', '16', '--gen-tokens', '8', '--cache-size', '20']);
    expect(small.code).toBe(1);
    expect(small.stderr).toMatch(/--cache-size 20 is smaller than the prompt and generated tokens \(24 tokens\)/);
  });

  it('refuses --prompt-tokens past the context length before loading', async () => {
    const r = await lithe(['bench', '-m', model, '--prompt-tokens', '4000']);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe("error: --prompt-tokens + --gen-tokens (4064 tokens) exceeds the model's context length (max_position_embeddings 512); use at most 512\n");
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

describe('speculative decoding', () => {
  const gen = ['generate', '-m', '', '-p', PROMPT, '-t', '0', '-n', '16', '--backend', 'cpu'];
  const args = (...extra: string[]) => [...gen.map((a) => a || model), ...extra];

  it('--draft self-int8 / --prompt-lookup give plain greedy tokens and report acceptance', async () => {
    const plain = await json(args());
    const int8 = await json(args('--draft', 'self-int8'));
    const lookup = await json(args('--prompt-lookup', '2', '--draft-tokens', '3'));
    for (const r of [int8, lookup]) {
      expect(r.token_ids).toEqual(plain.token_ids);
      expect(r.mean_accepted).toBeTypeOf('number');
    }
    expect(int8.draft).toBe('self-int8');
    expect(int8.acceptance_rate as number[]).toHaveLength(4);
    expect(lookup.acceptance_rate as number[]).toHaveLength(3);
    expect(plain.mean_accepted).toBeUndefined();
  });

  it('--draft takes a GGUF file (here the model itself, converted to q8_0)', async () => {
    const gguf = join(root, 'draft-q8.gguf');
    const conv = await lithe(['convert', '-m', model, '--to', 'gguf', '--type', 'q8_0', '--out', gguf]);
    expect(conv.code).toBe(0);
    const [plain, spec] = [await json(args()), await json(args('--draft', gguf))];
    expect(spec.token_ids).toEqual(plain.token_ids);
    expect(spec.draft).toBe('model');
    expect(spec.mean_accepted as number).toBeGreaterThan(0);
  }, 180_000);

  it('composes with --kv-quant: the quantized cache rolls back', async () => {
    const q = await json(args('--kv-quant', 'int8'));
    const spec = await json(args('--kv-quant', 'int8', '--draft', 'self-int4', '--draft-tokens', '5'));
    expect(spec.token_ids).toEqual(q.token_ids);
    expect((spec.acceptance_rate as number[]).length).toBe(5);
  });

  it('bench --json carries acceptance; conflicting flags are an error', async () => {
    const b = await json(['bench', '-m', model, '--prompt-tokens', '16', '--gen-tokens', '8', '--backend', 'cpu', '--prompt-lookup']);
    expect(b.mean_accepted).toBeTypeOf('number');
    const both = await lithe([...args('--draft', 'self-int8', '--prompt-lookup')]);
    expect(both.code).toBe(1);
    expect(both.stderr).toMatch(/--draft and --prompt-lookup are two kinds of draft; give one of them/);
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
    expect(r.stderr).toMatch(/^backend: [^\n]+\nerror: the conversation \(\d+ tokens\) fills the KV cache \(30 tokens\); raise --cache-size\n$/);
    expect(r.code).toBe(1);
  });

  it('fails clearly for a model without a chat template, naming --chat-template', async () => {
    const dir = join(root, 'no-template');
    writeRandomModel(dir, { chatTemplate: false });
    const r = await lithe(['chat', '-m', dir]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('has no chat template');
    expect(r.stderr).toContain('pass --chat-template <file|name> (built-in: chatml, llama2, llama3, mistral, zephyr, gemma)');
    const bad = await lithe(['chat', '-m', dir, '--chat-template', 'chatlm']);
    expect(bad.stderr).toMatch(/--chat-template 'chatlm' is neither a file nor a built-in template name/);
  });

  it('takes --chat-template by name or file, and a directory whose template is only chat_template.jinja', async () => {
    const dir = join(root, 'no-template-2');
    writeRandomModel(dir, { chatTemplate: false });
    const chatml = await createPipeline({ model: dir, chatTemplate: 'chatml' });
    const want = (await chatml.chat([{ role: 'user', content: 'hello' }], greedy).result).text;
    chatml.dispose();
    const byName = await lithe(['chat', '-m', dir, '-t', '0', '-n', '6', '--chat-template', 'chatml'], { input: 'hello\n' });
    expect(byName.stdout).toBe(`${want}\n`);
    const file = join(root, 'chatml.jinja');
    writeFileSync(file, BUILTIN_CHAT_TEMPLATES.chatml);
    const byFile = await lithe(['chat', '-m', dir, '-t', '0', '-n', '6', '--chat-template', file], { input: 'hello\n' });
    expect(byFile.stdout).toBe(`${want}\n`);
    writeFileSync(join(dir, 'chat_template.jinja'), BUILTIN_CHAT_TEMPLATES.chatml);
    const jinja = await lithe(['chat', '-m', dir, '-t', '0', '-n', '6'], { input: 'hello\n' });
    expect(jinja.code).toBe(0);
    expect(jinja.stdout).toBe(`${want}\n`);
  });

  it("uses a GGUF file's tokenizer.chat_template", async () => {
    const gguf = join(root, 'model.gguf');
    const conv = await lithe(['convert', '-m', model, '--out', gguf, '--type', 'f32']);
    expect(conv.code).toBe(0);
    const first = await reply([{ role: 'user', content: 'hello' }]);
    const r = await lithe(['chat', '-m', gguf, '-t', '0', '-n', '6'], { input: 'hello\n' });
    expect(r.stderr).toMatch(/^backend: /);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`${first}\n`);
  });

  it('Ctrl-C during a reply stops it and returns to the prompt', async () => {
    const { spawn } = await import('node:child_process');
    const long = await reply([{ role: 'user', content: 'hello' }], { maxTokens: 400 });
    const child = spawn(process.execPath, [BIN, 'chat', '-m', model, '-t', '0', '-n', '400', '--backend', 'cpu'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    child.stdout.on('data', (d: Buffer) => {
      if (!stdout) child.kill('SIGINT'); // mid-reply: the first piece has arrived
      stdout += d.toString();
    });
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    child.stdin.write('hello\n');
    await new Promise((resolve) => setTimeout(resolve, 3000));
    child.stdin.end('/exit\n');
    expect(await exited).toBe(0);
    const cut = stdout.split('\n')[0];
    expect(cut.length).toBeLessThan(long.length);
    expect(long.startsWith(cut)).toBe(true);
  }, 30_000);
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

/** Starts `lithe serve` with `args`; resolves with its URL once the model is loaded. */
async function serve(args: string[]) {
  const { spawn } = await import('node:child_process');
  const child = spawn(process.execPath, [BIN, 'serve', '--port', '0', '--quiet', '--backend', 'cpu', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  const url = await new Promise<string>((resolve, reject) => {
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      const m = /listening on (\S+)/.exec(stderr);
      if (m && stderr.includes('model loaded')) resolve(m[1]);
    });
    child.on('exit', (code) => reject(new Error(`serve exited early (${code}): ${stderr}`)));
  });
  const stop = () => new Promise<number | null>((resolve) => (child.on('exit', resolve), child.kill('SIGTERM')));
  return { url, stop };
}

describe('serve --kv-budget, --kv-quant, --no-prefix-cache', () => {
  const metric = async (url: string, name: string) => Number(new RegExp(`^${name}\\{[^}]*\\} (\\S+)$`, 'm').exec(await (await fetch(`${url}/metrics`)).text())![1]);
  const complete = async (url: string) =>
    ((await (await fetch(`${url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'model', prompt: PROMPT + ' there was a miller', max_tokens: 3, temperature: 0 }) })).json()) as {
      usage: { prompt_tokens: number; prompt_tokens_details: { cached_tokens: number } };
    });

  it('the budget caps the generations by the bytes of their caches; int8 KV fits more; prefix caching can be turned off', async () => {
    const flags = ['--model', model, '--parallel', '64', '--kv-budget', '1MiB', '--cache-size', '128'];
    const dense = await serve(flags);
    const int8 = await serve([...flags, '--kv-quant', 'int8', '--no-prefix-cache']);
    try {
      expect(await metric(dense.url, 'lithe_kv_cache_budget_bytes')).toBe(2 ** 20);
      const [d, q] = [await metric(dense.url, 'lithe_kv_cache_sessions'), await metric(int8.url, 'lithe_kv_cache_sessions')];
      expect(d).toBeGreaterThanOrEqual(1);
      expect(q).toBeGreaterThan(1.4 * d);
      await complete(dense.url);
      const again = await complete(dense.url);
      expect(again.usage.prompt_tokens_details.cached_tokens).toBe(again.usage.prompt_tokens - 1);
      await complete(int8.url);
      expect((await complete(int8.url)).usage.prompt_tokens_details.cached_tokens).toBe(0);
    } finally {
      expect(await dense.stop()).toBe(0);
      expect(await int8.stop()).toBe(0);
    }
  }, 60_000);

  it('a --kv-budget that is not a size is refused', async () => {
    const r = await lithe(['serve', '--model', model, '--kv-budget', 'lots']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("--kv-budget must be a number of bytes, e.g. 2000000000, 2G or 1.5GiB; got 'lots'");
  });
});

describe('serve --chat-template', () => {
  it('a model without a template gets a 400 naming the option; --chat-template makes it chat', async () => {
    const dir = join(root, 'serve-no-template');
    writeRandomModel(dir, { chatTemplate: false });
    const body = JSON.stringify({ model: 'serve-no-template', messages: [{ role: 'user', content: 'hello' }], max_tokens: 3, temperature: 0 });
    const post = (url: string) => fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    const plain = await serve(['--model', dir]);
    const refused = await post(plain.url);
    expect(refused.status).toBe(400);
    expect(((await refused.json()) as { error: { message: string } }).error.message).toContain('--chat-template <file|name>');
    await plain.stop();
    const chatml = await serve(['--model', dir, '--chat-template', 'chatml']);
    const ok = await post(chatml.url);
    expect(ok.status).toBe(200);
    expect(((await ok.json()) as { usage: { completion_tokens: number } }).usage.completion_tokens).toBe(3);
    expect(await chatml.stop()).toBe(0);
  }, 60_000);
});

describe('serve', () => {
  it('serves the model until SIGTERM, then drains and exits 0', async () => {
    const { spawn } = await import('node:child_process');
    const child = spawn(process.execPath, [BIN, 'serve', '--model', model, '--port', '0', '--quiet', '--backend', 'cpu', '--cors', 'https://app.example', '--write-timeout', '5'], { stdio: ['ignore', 'ignore', 'pipe'] });
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
    const preflight = await fetch(`${url}/v1/completions`, { method: 'OPTIONS', headers: { origin: 'https://app.example', 'access-control-request-method': 'POST' } });
    expect(preflight.headers.get('access-control-allow-origin')).toBe('https://app.example');
    const models = (await (await fetch(`${url}/v1/models`)).json()) as { data: { id: string }[] };
    expect(models.data.map((m) => m.id)).toEqual(['model']);
    const completion = (await (await fetch(`${url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'model', prompt: PROMPT, max_tokens: 4, temperature: 0 }) })).json()) as { usage: { completion_tokens: number } };
    expect(completion.usage.completion_tokens).toBe(4);
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
  });
});
