import { availableParallelism } from 'node:os';
import { readdirSync, readFileSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import type { ThreadsPlatform, WorkerHandle } from './types.js';

/** Node: worker_threads, and the core count from sysfs. */

async function spawnWorker(source: string, data: Record<string, unknown>): Promise<WorkerHandle> {
  const main = "const { parentPort, workerData } = require('node:worker_threads');\nstart(workerData, (m) => parentPort.postMessage(m));\n";
  const w = new Worker(`${source}\n${main}`, { eval: true, workerData: data });
  await new Promise<void>((resolve, reject) => {
    w.once('message', () => resolve());
    w.once('error', reject);
    w.once('exit', (code) => reject(new Error(`a wasm worker exited (code ${code}) before it started`)));
  });
  w.removeAllListeners('exit');
  w.removeAllListeners('error');
  // Workers never keep the process alive; dispose() still ends them explicitly.
  w.unref();
  return w;
}

/**
 * Linux: distinct core ids in sysfs. SMT siblings share one core's vector units, so kernels bound
 * by them gain little from the second sibling.
 */
async function physicalCores(): Promise<number> {
  const logical = availableParallelism();
  try {
    const cores = new Set<string>();
    for (const cpu of readdirSync('/sys/devices/system/cpu').filter((d) => /^cpu\d+$/.test(d))) {
      const dir = `/sys/devices/system/cpu/${cpu}/topology`;
      cores.add(`${readFileSync(`${dir}/physical_package_id`, 'utf8').trim()}:${readFileSync(`${dir}/core_id`, 'utf8').trim()}`);
    }
    return cores.size > 0 ? Math.min(cores.size, logical) : logical;
  } catch {
    return logical;
  }
}

export const threads: ThreadsPlatform = { spawnWorker, physicalCores, defaultThreads: physicalCores, canBlock: true };
