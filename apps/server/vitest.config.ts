import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Files one at a time: some time /health against a 100 ms bound, and others saturate the
    // CPU with long generations; run side by side, the second would be timed with the first.
    fileParallelism: false,
  },
});
