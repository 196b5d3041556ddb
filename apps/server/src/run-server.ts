/**
 * runServer: what both `lithe serve` and `lithe-server` do once their flags are parsed: start,
 * report, and on SIGTERM or SIGINT stop accepting requests, let those in flight finish (up to
 * `drainSeconds`), cut what is left, close every connection and exit 0.
 */
import { isLoopbackName } from './host-check.js';
import { startServer, type StartServerOptions } from './start-server.js';

/** Past the drain timeout, how long closing may take before the process exits anyway. */
const EXIT_BACKSTOP_MS = 1500;

export async function runServer(options: StartServerOptions & { drainSeconds?: number }): Promise<void> {
  const drainSeconds = options.drainSeconds ?? 30;
  const host = options.host ?? '127.0.0.1';
  if (options.apiKey === undefined && !isLoopbackName(host)) {
    process.stderr.write(`warning: listening on ${host} without an API key: anyone who can reach this address can run generations (set --api-key or LITHE_API_KEY)\n`);
  }
  const server = await startServer(options);
  process.stderr.write(`lithe server listening on ${server.url} (loading ${options.model})\n`);

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    process.stderr.write(`${signal}: finishing requests in flight (up to ${drainSeconds} s)\n`);
    // Whatever holds the process after the drain (a socket, a stuck close), it exits.
    setTimeout(() => {
      process.stderr.write('the server did not close in time; exiting\n');
      process.exit(1);
    }, drainSeconds * 1000 + EXIT_BACKSTOP_MS).unref();
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
    const { state } = server.app.lithe;
    const kv = state.metrics.kv?.();
    const mib = (n: number) => `${(n / 2 ** 20).toFixed(1)} MiB`;
    const memory = kv ? ` (KV budget ${mib(kv.budget)}: ${kv.sessions} caches of ${mib(state.pipeline!.cacheBytes)}; ${state.scheduler.capacity} run at once)` : '';
    process.stderr.write(`model loaded: ${state.modelId}${memory}\n`);
  } catch (err) {
    await server.app.close();
    throw new Error(`the model could not be loaded: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
}
