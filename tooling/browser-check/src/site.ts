import { copyFile, mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

/** Builds the test page (app/): page.js and worker.js bundled for the browser, beside index.html. */
export async function buildSite(out: string): Promise<string> {
  const app = fileURLToPath(new URL('./app/', import.meta.url));
  await rm(out, { recursive: true, force: true });
  await mkdir(out, { recursive: true });
  await esbuild.build({
    entryPoints: { page: join(app, 'page.ts'), worker: join(app, 'worker.ts'), 'pipeline-worker': join(app, 'pipeline-worker.ts') },
    bundle: true,
    platform: 'browser',
    format: 'esm',
    target: 'es2022',
    sourcemap: true,
    outdir: out,
    logLevel: 'silent',
  });
  await copyFile(join(app, 'index.html'), join(out, 'index.html'));
  return out;
}
