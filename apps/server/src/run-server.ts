/**
 * runServer: what both `lithe serve` and `lithe-server` do once their flags are parsed: start,
 * report, and on SIGTERM or SIGINT stop accepting requests, let those in flight finish (up to
 * `drainSeconds`) and exit 0.
 */
import { startServer, type StartServerOptions } from './start-server.js';

export async function runServer(options: StartServerOptions & { drainSeconds?: number }): Promise<void> {
  const drainSeconds = options.drainSeconds ?? 30;
  const server = await startServer(options);
  process.stderr.write(`lithe server listening on ${server.url} (loading ${options.model})\n`);

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    process.stderr.write(`${signal}: finishing requests in flight (up to ${drainSeconds} s)\n`);
    server.close(drainSeconds * 1000).then(
      () => process.exit(0),
      (err: unknown) => {
        process.stderr.write(`error while stopping: ${err instanceof Error ? err.message : String(err)}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));

  try {
    await server.ready;
    process.stderr.write(`model loaded: ${server.app.lithe.state.modelId}\n`);
  } catch (err) {
    await server.app.close();
    throw new Error(`the model could not be loaded: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
}
