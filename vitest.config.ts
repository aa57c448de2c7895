import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Sandboxes are real processes; give slow CI machines room, but keep each test bounded.
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Test files share the host's cgroup and mount tables; running two files at once
    // would make the leak checks (mounts, cgroups, processes) see each other's work.
    fileParallelism: false,
    globalSetup: ['test/global-setup.ts'],
  },
});
