import { describe, expect, it } from 'vitest';
import { BUILTIN_CHAT_TEMPLATE_NAMES, BUILTIN_CHAT_TEMPLATES, resolveChatTemplate } from './builtin-chat-templates.js';
import { renderChatTemplate } from './chat-template.js';

const convo = [
  { role: 'system', content: 'Be brief.' },
  { role: 'user', content: 'Hi' },
  { role: 'assistant', content: 'Hello!' },
  { role: 'user', content: 'Bye' },
];

// The prompt formats as each model family documents them.
const EXPECTED: Record<string, [bos: string, eos: string, text: string]> = {
  chatml: ['', '<|im_end|>', '<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\n'],
  llama2: ['<s>', '</s>', '<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST] Hello! </s><s>[INST] Bye [/INST]'],
  llama3: [
    '<|begin_of_text|>',
    '<|eot_id|>',
    '<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>' +
      '<|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nBye<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n',
  ],
  mistral: ['<s>', '</s>', '<s>[INST] Be brief.\n\nHi [/INST] Hello!</s>[INST] Bye [/INST]'],
  zephyr: ['<s>', '</s>', '<|system|>\nBe brief.</s>\n<|user|>\nHi</s>\n<|assistant|>\nHello!</s>\n<|user|>\nBye</s>\n<|assistant|>\n'],
  gemma: ['<bos>', '<eos>', '<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\nHello!<end_of_turn>\n<start_of_turn>user\nBye<end_of_turn>\n<start_of_turn>model\n'],
};

describe('built-in chat templates', () => {
  it('has at least chatml, llama2, llama3, mistral, zephyr and gemma', () => {
    expect(BUILTIN_CHAT_TEMPLATE_NAMES).toEqual(expect.arrayContaining(Object.keys(EXPECTED)));
  });

  for (const [name, [bos, eos, text]] of Object.entries(EXPECTED)) {
    it(`${name} renders the documented prompt format`, () => {
      const t = BUILTIN_CHAT_TEMPLATES[name as keyof typeof BUILTIN_CHAT_TEMPLATES];
      expect(renderChatTemplate(t, convo, { bosToken: bos, eosToken: eos })).toBe(text);
      // One user message, no system message.
      expect(renderChatTemplate(t, [{ role: 'user', content: 'Q' }], { bosToken: bos, eosToken: eos })).toContain('Q');
    });
  }

  it('rejects unknown roles where the format has no place for them', () => {
    for (const name of ['llama2', 'mistral', 'gemma'] as const) {
      expect(() => renderChatTemplate(BUILTIN_CHAT_TEMPLATES[name], [{ role: 'tool', content: 'x' }])).toThrow(/Only system, user and assistant/);
    }
  });

  it('resolves a name or template text, and refuses anything else with the names listed', () => {
    expect(resolveChatTemplate('chatml')).toBe(BUILTIN_CHAT_TEMPLATES.chatml);
    expect(resolveChatTemplate('{{ messages[0].content }}')).toBe('{{ messages[0].content }}');
    expect(() => resolveChatTemplate('chatlm')).toThrow(/'chatlm' is neither a built-in template \(chatml, llama2, llama3, mistral, zephyr, gemma\)/);
    expect(() => resolveChatTemplate('constructor')).toThrow(/neither a built-in/);
  });
});
