/**
 * Chat templates by name, for models that ship none (base models, GGUFs without
 * `tokenizer.chat_template`), written from each model family's documented prompt format. The
 * special-token strings are literal; `bos_token` / `eos_token` come from the tokenizer.
 */

const ROLE_ERROR = "{{ raise_exception('Only system, user and assistant roles are supported') }}";

export const BUILTIN_CHAT_TEMPLATES = {
  /** `<|im_start|>role\n...<|im_end|>\n` (Qwen, SmolLM, many fine-tunes). */
  chatml:
    "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}{% endfor %}" +
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}",
  /** Llama 2 chat: `<s>[INST] <<SYS>>\n...\n<</SYS>>\n\nuser [/INST] answer </s>`, the system block in the first turn. */
  llama2:
    "{% set ns = namespace(sys='') %}{% for m in messages %}" +
    "{% if m['role'] == 'system' %}{% set ns.sys = '<<SYS>>\\n' + m['content'] + '\\n<</SYS>>\\n\\n' %}" +
    "{% elif m['role'] == 'user' %}{{ bos_token + '[INST] ' + ns.sys + m['content'] + ' [/INST]' }}{% set ns.sys = '' %}" +
    "{% elif m['role'] == 'assistant' %}{{ ' ' + m['content'] + ' ' + eos_token }}" +
    `{% else %}${ROLE_ERROR}{% endif %}{% endfor %}`,
  /** Llama 3 / 3.1 instruct: header ids around the role, `<|eot_id|>` after each message. */
  llama3:
    "{{ bos_token }}{% for m in messages %}{{ '<|start_header_id|>' + m['role'] + '<|end_header_id|>\\n\\n' + (m['content'] | trim) + '<|eot_id|>' }}{% endfor %}" +
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}",
  /** Mistral instruct: `<s>[INST] user [/INST] answer</s>`; no system role, so it leads the next user turn. */
  mistral:
    "{{ bos_token }}{% set ns = namespace(sys='') %}{% for m in messages %}" +
    "{% if m['role'] == 'system' %}{% set ns.sys = m['content'] + '\\n\\n' %}" +
    "{% elif m['role'] == 'user' %}{{ '[INST] ' + ns.sys + m['content'] + ' [/INST]' }}{% set ns.sys = '' %}" +
    "{% elif m['role'] == 'assistant' %}{{ ' ' + m['content'] + eos_token }}" +
    `{% else %}${ROLE_ERROR}{% endif %}{% endfor %}`,
  /** Zephyr: `<|role|>\n...</s>\n`. */
  zephyr:
    "{% for m in messages %}{{ '<|' + m['role'] + '|>\\n' + m['content'] + eos_token + '\\n' }}{% endfor %}" +
    "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}",
  /** Gemma: `<start_of_turn>user\n...<end_of_turn>\n`, the assistant is `model`; a system message leads the next user turn. */
  gemma:
    "{{ bos_token }}{% set ns = namespace(sys='') %}{% for m in messages %}" +
    "{% if m['role'] == 'system' %}{% set ns.sys = m['content'] + '\\n\\n' %}" +
    "{% elif m['role'] == 'user' %}{{ '<start_of_turn>user\\n' + ns.sys + m['content'] + '<end_of_turn>\\n' }}{% set ns.sys = '' %}" +
    "{% elif m['role'] == 'assistant' %}{{ '<start_of_turn>model\\n' + m['content'] + '<end_of_turn>\\n' }}" +
    `{% else %}${ROLE_ERROR}{% endif %}{% endfor %}` +
    "{% if add_generation_prompt %}{{ '<start_of_turn>model\\n' }}{% endif %}",
} as const satisfies Record<string, string>;

export type BuiltinChatTemplateName = keyof typeof BUILTIN_CHAT_TEMPLATES;
export const BUILTIN_CHAT_TEMPLATE_NAMES = Object.keys(BUILTIN_CHAT_TEMPLATES) as BuiltinChatTemplateName[];

/**
 * A `chatTemplate` option: a built-in name, or template text (anything with `{{` or `{%`). Other
 * strings are refused, so a misspelt name or a path given where text is expected says so.
 */
export function resolveChatTemplate(nameOrTemplate: string): string {
  if (Object.hasOwn(BUILTIN_CHAT_TEMPLATES, nameOrTemplate)) return BUILTIN_CHAT_TEMPLATES[nameOrTemplate as BuiltinChatTemplateName];
  if (/\{\{|\{%/.test(nameOrTemplate)) return nameOrTemplate;
  throw new Error(
    `chatTemplate '${nameOrTemplate.length > 60 ? `${nameOrTemplate.slice(0, 57)}...` : nameOrTemplate}' is neither a built-in template ` +
      `(${BUILTIN_CHAT_TEMPLATE_NAMES.join(', ')}) nor Jinja template text; in the CLI, --chat-template also takes a file`,
  );
}
