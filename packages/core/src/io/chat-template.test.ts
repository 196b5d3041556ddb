import { describe, expect, it } from 'vitest';
import { MissingChatTemplateError, pickChatTemplate, renderChatTemplate } from './chat-template.js';

// Templates as shipped in the models' tokenizer_config.json (Jinja sees \n inside string literals).
const LLAMA2_TEMPLATE = String.raw`{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\n' + system_message + '\n<</SYS>>\n\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}`;

const MISTRAL_TEMPLATE = String.raw`{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}`;

const QWEN_TEMPLATE = String.raw`{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}`;

const special = { bosToken: '<s>', eosToken: '</s>' };

describe('renderChatTemplate', () => {
  it('renders the Llama-2 [INST] template with a system prompt', () => {
    const out = renderChatTemplate(
      LLAMA2_TEMPLATE,
      [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'Hi there ' },
        { role: 'assistant', content: 'Hello!' },
        { role: 'user', content: 'How are you?' },
      ],
      special,
    );
    expect(out).toBe(
      '<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi there [/INST] Hello! </s><s>[INST] How are you? [/INST]',
    );
  });

  it('renders the Mistral [INST] template and its raise_exception', () => {
    const msgs = [
      { role: 'user', content: 'What is 2+2?' },
      { role: 'assistant', content: '4' },
      { role: 'user', content: 'And 3+3?' },
    ];
    expect(renderChatTemplate(MISTRAL_TEMPLATE, msgs, special)).toBe(
      '<s>[INST] What is 2+2? [/INST]4</s>[INST] And 3+3? [/INST]',
    );
    expect(() =>
      renderChatTemplate(MISTRAL_TEMPLATE, [{ role: 'assistant', content: 'x' }], special),
    ).toThrow('Chat template error: Conversation roles must alternate user/assistant/user/assistant/...');
  });

  it('renders the ChatML (Qwen) template with and without the generation prompt', () => {
    const msgs = [{ role: 'user', content: 'Hi' }];
    expect(renderChatTemplate(QWEN_TEMPLATE, msgs)).toBe(
      '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n',
    );
    expect(
      renderChatTemplate(QWEN_TEMPLATE, [{ role: 'system', content: 'S' }, ...msgs], { addGenerationPrompt: false }),
    ).toBe('<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n');
  });

  it('passes extra variables', () => {
    expect(renderChatTemplate('{{ greeting }} {{ messages | length }}', [], { extra: { greeting: 'hey' } })).toBe('hey 0');
  });

  it('says clearly when there is no template, and when a template does not parse', () => {
    expect(() => renderChatTemplate(null, [])).toThrow(MissingChatTemplateError);
    expect(() => renderChatTemplate(undefined, [])).toThrow(/no chat template.*raw prompt/s);
    expect(() => renderChatTemplate('{% for %}', [])).toThrow(/Invalid chat template/);
  });
});

describe('pickChatTemplate', () => {
  it('takes a string as is and picks "default" from a list of named templates', () => {
    expect(pickChatTemplate('abc')).toBe('abc');
    expect(
      pickChatTemplate([
        { name: 'tool_use', template: 'T' },
        { name: 'default', template: 'D' },
      ]),
    ).toBe('D');
    expect(pickChatTemplate([{ name: 'rag', template: 'R' }])).toBeNull();
    expect(pickChatTemplate(undefined)).toBeNull();
  });
});
