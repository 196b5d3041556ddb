import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { BUNDLERS, bundleForBrowser, importAll, writeEntries } from './bundlers.js';

// A browser bundle of @lithe/core and of every technique package holds no Node built-in, whichever
// bundler makes it. The entries live inside this package so that they resolve its dependencies.
const here = fileURLToPath(new URL('.', import.meta.url));
const work = join(here, '..', '.bundle-check');

export const PACKAGES = ['@lithe/core', '@lithe/kv-quant', '@lithe/nf4', '@lithe/gptq', '@lithe/awq', '@lithe/flash-attn', '@lithe/speculative', '@lithe/streaming', '@lithe/lckv'];

let entries: Record<string, string>;
let control: Record<string, string>;

beforeAll(async () => {
  entries = await writeEntries(join(work, 'entries'), Object.fromEntries(PACKAGES.map((p) => [p.replace('@lithe/', ''), importAll(p)])));
  // The check's own check: an entry that does import Node must be caught by every bundler.
  control = await writeEntries(join(work, 'control'), {
    control: "import { readFileSync } from 'node:fs';\nimport { join } from 'path';\nglobalThis.__bundled = [readFileSync, join, () => import('node:os')];\n",
  });
});

describe.each(BUNDLERS)('%s', (bundler) => {
  it('bundles every package for the browser without a Node built-in', async () => {
    const findings = await bundleForBrowser(bundler, entries, join(work, 'out', bundler));
    expect(Object.fromEntries(findings)).toEqual(Object.fromEntries(PACKAGES.map((p) => [p.replace('@lithe/', ''), []])));
  });

  it('reports a bundle that imports Node built-ins', async () => {
    const findings = await bundleForBrowser(bundler, control, join(work, 'out', `${bundler}-control`));
    expect(findings.get('control')!.length).toBeGreaterThan(0);
  });
});
