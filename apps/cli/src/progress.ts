import cliProgress from 'cli-progress';

export interface Progress {
  update(done: number, total: number): void;
  stop(): void;
}

/**
 * A progress bar on stderr, only when stderr is a terminal: pipes and logs get no control
 * characters. `show` formats the done/total values (bytes, windows...).
 */
export function progressBar(label: string, show: (n: number) => string = String): Progress {
  if (!process.stderr.isTTY) return { update() {}, stop() {} };
  const bar = new cliProgress.SingleBar(
    { stream: process.stderr, format: `${label} {bar} {percentage}% | {shownDone} / {shownTotal}`, hideCursor: true, clearOnComplete: true },
    cliProgress.Presets.shades_classic,
  );
  let started = false;
  return {
    update(done, total) {
      const payload = { shownDone: show(done), shownTotal: show(total) };
      if (!started) {
        bar.start(total, done, payload);
        started = true;
      } else {
        bar.setTotal(total);
        bar.update(done, payload);
      }
    },
    stop() {
      if (started) bar.stop();
      started = false;
    },
  };
}
