import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Servers, clients and strace share two cores: one test file at a time keeps them from
    // starving each other (nothing asserts timings, but timeouts should not be the CPU's fault).
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
