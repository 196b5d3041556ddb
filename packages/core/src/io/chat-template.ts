/**
 * Chat templates: the Jinja templates that Hugging Face models ship in tokenizer_config.json to
 * turn a list of messages into the exact prompt text the model was trained on.
 */
import { Template } from '@huggingface/jinja';

export interface ChatMessage {
  role: string;
  content: string;
}

export interface RenderChatTemplateOptions {
  bosToken?: string;
  eosToken?: string;
  /** Append the header that starts the assistant's turn (default true). */
  addGenerationPrompt?: boolean;
  /** More template variables (e.g. `tools`, `date_string`); they override the defaults. */
  extra?: Record<string, unknown>;
}

/** Thrown when a model has no chat template to apply. */
export class MissingChatTemplateError extends Error {
  constructor() {
    super(
      'This model has no chat template (no "chat_template" in tokenizer_config.json, no chat_template.jinja, no tokenizer.chat_template in the GGUF). ' +
        'Pass one: createPipeline({ chatTemplate }) or --chat-template <file|name> (built-in names: chatml, llama2, llama3, mistral, zephyr, gemma); ' +
        'or use generate() with a raw prompt string.',
    );
    this.name = 'MissingChatTemplateError';
  }
}

/** tokenizer_config.json holds either one template or a list of named ones; pick "default". */
export function pickChatTemplate(value: unknown): string | null {
  if (typeof value === 'string') return value;
  if (Array.isArray(value)) {
    const entry = value.find(
      (t): t is { name: string; template: string } =>
        typeof t === 'object' && t !== null && t.name === 'default' && typeof t.template === 'string',
    );
    return entry?.template ?? null;
  }
  return null;
}

// Parsing is the expensive part; templates are few and reused for every request.
const compiled = new Map<string, Template>();

function compile(source: string): Template {
  let t = compiled.get(source);
  if (!t) {
    try {
      t = new Template(source);
    } catch (e) {
      throw new Error(`Invalid chat template: ${(e as Error).message}`, { cause: e });
    }
    compiled.set(source, t);
  }
  return t;
}

/**
 * Renders `messages` with a chat template. The template language provides `raise_exception(msg)`
 * (templates use it to reject e.g. a misplaced system message) and `strftime_now(format)`.
 */
export function renderChatTemplate(
  template: string | null | undefined,
  messages: readonly ChatMessage[],
  opts: RenderChatTemplateOptions = {},
): string {
  if (!template) throw new MissingChatTemplateError();
  const compiledTemplate = compile(template);
  try {
    return compiledTemplate.render({
      messages,
      bos_token: opts.bosToken ?? '',
      eos_token: opts.eosToken ?? '',
      add_generation_prompt: opts.addGenerationPrompt ?? true,
      ...opts.extra,
    });
  } catch (e) {
    throw new Error(`Chat template error: ${(e as Error).message}`, { cause: e });
  }
}
