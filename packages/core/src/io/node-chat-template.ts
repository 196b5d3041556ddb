/** `--chat-template <file|name>` for the CLI and the server (Node only): a file, else a built-in name. */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { BUILTIN_CHAT_TEMPLATE_NAMES, BUILTIN_CHAT_TEMPLATES, type BuiltinChatTemplateName } from './builtin-chat-templates.js';

/** The template text a `--chat-template` value stands for; `flag` names the option in errors. */
export function loadChatTemplateOption(value: string, flag = '--chat-template'): string {
  if (existsSync(value) && statSync(value).isFile()) {
    const text = readFileSync(value, 'utf8');
    if (text.trim() === '') throw new Error(`${flag} ${value}: the file is empty`);
    return text;
  }
  if (Object.hasOwn(BUILTIN_CHAT_TEMPLATES, value)) return BUILTIN_CHAT_TEMPLATES[value as BuiltinChatTemplateName];
  throw new Error(`${flag} '${value}' is neither a file nor a built-in template name (${BUILTIN_CHAT_TEMPLATE_NAMES.join(', ')})`);
}
