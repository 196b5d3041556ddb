import { defineConfig } from 'tsup';

export default defineConfig({
  // bin.ts starts with a shebang, which esbuild keeps.
  entry: ['src/index.ts', 'src/bin.ts'],
  format: ['esm'],
  target: 'node20',
  dts: { entry: ['src/index.ts'] },
  sourcemap: true,
  clean: true,
});
