import { defineConfig } from 'tsup';

export default defineConfig({
  // bin.ts starts with a shebang, which esbuild keeps.
  // The prompt worker's thread runs its own file (prompt-worker.ts finds it beside itself).
  entry: ['src/index.ts', 'src/bin.ts', 'src/prompt-worker-thread.ts'],
  format: ['esm'],
  target: 'node20',
  dts: { entry: ['src/index.ts'] },
  sourcemap: true,
  clean: true,
});
