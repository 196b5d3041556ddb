import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BUILTIN_CHAT_TEMPLATES } from './builtin-chat-templates.js';
import { loadChatTemplateOption } from './node-chat-template.js';

describe('--chat-template <file|name>', () => {
  it('reads a file, else takes a built-in name, else says what it accepts', () => {
    const dir = mkdtempSync(join(tmpdir(), 'lithe-template-'));
    writeFileSync(join(dir, 't.jinja'), '{{ messages[0].content }}');
    writeFileSync(join(dir, 'empty.jinja'), ' \n');
    expect(loadChatTemplateOption(join(dir, 't.jinja'))).toBe('{{ messages[0].content }}');
    expect(loadChatTemplateOption('zephyr')).toBe(BUILTIN_CHAT_TEMPLATES.zephyr);
    expect(() => loadChatTemplateOption(join(dir, 'empty.jinja'))).toThrow(/the file is empty/);
    expect(() => loadChatTemplateOption(join(dir, 'missing.jinja'))).toThrow(/--chat-template '.*missing.jinja' is neither a file nor a built-in template name \(chatml, llama2, llama3, mistral, zephyr, gemma\)/);
    expect(() => loadChatTemplateOption(dir)).toThrow(/neither a file/);
  });
});
