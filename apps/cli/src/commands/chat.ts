import { createInterface } from 'node:readline';
import { Command } from 'commander';
import { BUILTIN_CHAT_TEMPLATE_NAMES, openModel, pickChatTemplate, type ChatMessage, type GenerateOptions, type Pipeline } from '@lithe/core';
import { loadModel } from '../load-model.js';
import { addChatTemplateOption, addLoadOptions, addSpeculativeOptions, addSamplingOptions, generateOptions, type LoadFlags, type SamplingFlags } from '../options.js';

interface Flags extends LoadFlags, SamplingFlags {
  system?: string;
}

export function chatCommand(): Command {
  const cmd = new Command('chat').description('chat with the model through its chat template (/reset clears the history, /exit or EOF quits)');
  addLoadOptions(cmd);
  addSpeculativeOptions(cmd);
  addSamplingOptions(cmd);
  addChatTemplateOption(cmd);
  return cmd.option('-s, --system <text>', 'system message at the start of the conversation').action(run);
}

async function run(flags: Flags): Promise<void> {
  // Checked before loading the weights, which can take a while: the model's own template (from
  // tokenizer_config.json, chat_template.jinja or the GGUF's tokenizer.chat_template), or the flag's.
  if (flags.chatTemplate === undefined) {
    const parts = await openModel(flags.model);
    const template = pickChatTemplate(parts.tokenizerConfig?.chat_template);
    await parts.close();
    if (!template) {
      throw new Error(
        `${flags.model} has no chat template (no "chat_template" in tokenizer_config.json, no chat_template.jinja, no tokenizer.chat_template in a GGUF); ` +
          `pass --chat-template <file|name> (built-in: ${BUILTIN_CHAT_TEMPLATE_NAMES.join(', ')}), or use 'lithe generate' with a plain prompt`,
      );
    }
  }
  const pipeline = await loadModel(flags);
  const opts = generateOptions(flags, pipeline.samplingDefaults);

  // Piped stdin: read lines, answer each, exit at EOF; no prompts or banners on stdout.
  const interactive = Boolean(process.stdin.isTTY && process.stdout.isTTY);
  const rl = createInterface({ input: process.stdin, output: interactive ? process.stdout : undefined, terminal: interactive });
  const start: ChatMessage[] = flags.system ? [{ role: 'system', content: flags.system }] : [];
  let history = [...start];
  let running: AbortController | null = null;
  // Ctrl-C stops the reply being written and returns to the prompt; at the prompt it quits. A
  // terminal delivers it to readline; piped input gets the signal itself.
  const onInterrupt = () => (running ? running.abort() : rl.close());
  rl.on('SIGINT', onInterrupt);
  process.on('SIGINT', onInterrupt);

  if (interactive) {
    process.stderr.write('/reset clears the conversation, /exit or Ctrl-D quits, Ctrl-C stops a reply\n');
    rl.setPrompt('> ');
    rl.prompt();
  }
  try {
    for await (const raw of rl) {
      const line = raw.trim();
      if (line === '/exit') break;
      if (line === '/reset') {
        history = [...start];
        if (interactive) process.stderr.write('(conversation cleared)\n');
      } else if (line) {
        running = new AbortController();
        const reply = await answer(pipeline, [...history, { role: 'user', content: line }], { ...opts, signal: running.signal }, interactive);
        running = null;
        if (reply !== null) history.push({ role: 'user', content: line }, { role: 'assistant', content: reply });
      }
      if (interactive) rl.prompt();
    }
  } finally {
    process.off('SIGINT', onInterrupt);
    rl.close();
    pipeline.dispose();
  }
}

/** Streams one reply to stdout; returns its text, or null when it failed (the turn is dropped). */
async function answer(pipeline: Pipeline, messages: ChatMessage[], opts: GenerateOptions, interactive: boolean): Promise<string | null> {
  let wrote = false;
  try {
    const generation = pipeline.chat(messages, { ...opts, maxTokens: replyRoom(pipeline, messages, opts.maxTokens ?? pipeline.defaultMaxTokens) });
    for await (const ev of generation) {
      process.stdout.write(ev.text);
      wrote = true;
    }
    process.stdout.write('\n');
    return (await generation.result).text;
  } catch (err) {
    // A full KV cache or a template error ends this turn, not the session; scripts still see exit 1.
    if (wrote) process.stdout.write('\n');
    process.stderr.write(`error: ${(err as Error).message}${interactive ? ' (/reset starts a new conversation)' : ''}\n`);
    if (!interactive) process.exitCode = 1;
    return null;
  }
}

/**
 * --max-tokens, shortened so that the reply fits in the KV cache after the conversation so far
 * (with --window the cache rolls, so the conversation may grow for ever).
 */
function replyRoom(pipeline: Pipeline, messages: ChatMessage[], maxTokens: number): number {
  if (pipeline.unboundedContext) return maxTokens;
  const prompt = pipeline.encodeChat(messages);
  const room = pipeline.cacheSize - prompt.length;
  if (room < 1) throw new Error(`the conversation (${prompt.length} tokens) fills the KV cache (${pipeline.cacheSize} tokens); raise --cache-size`);
  return Math.min(maxTokens, room);
}
