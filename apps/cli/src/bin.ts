import { buildProgram } from './program.js';

// `lithe generate ... | head` closes stdout early: that ends the command, it is not an error.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(0);
  throw err;
});

try {
  await buildProgram().parseAsync(process.argv);
} catch (err) {
  // Users get the message; the stack is for debugging lithe itself.
  if (process.env.LITHE_DEBUG === '1') console.error(err);
  else process.stderr.write(`error: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
}
