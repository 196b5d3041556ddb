import { existsSync } from 'node:fs';
import { defineConfig, type Options } from 'tsup';

/**
 * Two builds of one source. dist/ is for Node (exports condition "node"): `platform/<name>.ts` are
 * the Node implementations, and `node:` prefixes stay. dist/browser/ is the universal build (the
 * "browser" and "default" conditions): every `platform/<name>.js` import resolves to
 * `platform/<name>.browser.ts`, so no Node built-in is reachable from it.
 */
const browserPlatform = {
  name: 'browser-platform',
  setup(build: { onResolve(o: { filter: RegExp }, cb: (a: { path: string; resolveDir: string }) => { path: string } | undefined): void }) {
    build.onResolve({ filter: /\/platform\/[a-z-]+\.js$/ }, (args) => {
      const file = `${args.resolveDir}/${args.path.replace(/\.js$/, '.browser.ts')}`;
      if (!existsSync(file)) throw new Error(`${args.path} has no browser implementation (${file})`);
      return { path: file };
    });
  },
};

const common: Options = { format: ['esm'], sourcemap: true, target: 'es2022' };

export default defineConfig([
  {
    ...common,
    entry: { index: 'src/index.ts', node: 'src/node.ts', testing: 'src/testing/index.ts' },
    platform: 'node',
    removeNodeProtocol: false,
    // The WebGPU types (GPUDevice, ...) are globals from @webgpu/types: the bundled .d.ts must reference them.
    dts: { banner: '/// <reference types="@webgpu/types" />' },
    // The browser build writes dist/browser at the same time.
    clean: ['!browser/**'],
  },
  {
    ...common,
    entry: { index: 'src/index.ts' },
    outDir: 'dist/browser',
    platform: 'browser',
    esbuildPlugins: [browserPlatform],
    clean: true,
  },
]);
