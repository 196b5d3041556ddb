import { Command } from 'commander';
import pkg from '../package.json' with { type: 'json' };
import { benchCommand } from './commands/bench.js';
import { chatCommand } from './commands/chat.js';
import { convertCommand } from './commands/convert.js';
import { generateCommand } from './commands/generate.js';
import { inspectCommand } from './commands/inspect.js';
import { perplexityCommand } from './commands/perplexity.js';
import { quantizeCommand } from './commands/quantize.js';
import { serveCommand } from './commands/serve.js';

export function buildProgram(): Command {
  return new Command('lithe')
    .description('Run Llama-family language models from Hugging Face model directories and GGUF files')
    .version(pkg.version)
    .showHelpAfterError('(run with --help for usage)')
    .addCommand(generateCommand())
    .addCommand(chatCommand())
    .addCommand(perplexityCommand())
    .addCommand(benchCommand())
    .addCommand(inspectCommand())
    .addCommand(serveCommand())
    .addCommand(quantizeCommand())
    .addCommand(convertCommand());
}
