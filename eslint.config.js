import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  // Contestants' submissions for the example judge are not capsule's code.
  { ignores: ['dist/', 'build/', 'node_modules/', 'coverage/', 'examples/judge/submissions/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    // Node's globals (the `globals` package would be a dependency for eight names).
    languageOptions: {
      globals: Object.fromEntries(
        [
          'process',
          'console',
          'URL',
          'Buffer',
          'setTimeout',
          'clearTimeout',
          'performance',
          'AbortController',
        ].map((name) => [name, 'readonly']),
      ),
    },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      eqeqeq: ['error', 'always'],
      'no-console': 'off',
    },
  },
);
