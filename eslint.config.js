// ESLint flat config: typescript-eslint with type information (no-floating-promises matters in a
// router: a dropped promise is a dropped request), and the workflow sandbox rule: workflows/ must
// stay deterministic, so no Node built-ins, SDKs or I/O libraries can be imported there.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['node_modules/', '.tools/', '.data/', '.build/', '.build-*/', 'bench/results/', 'docs/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: false }],
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', destructuredArrayIgnorePattern: '^_' }],
    },
  },
  {
    // node:test's describe/it return promises the runner itself awaits.
    files: ['test/**/*.ts'],
    rules: {
      '@typescript-eslint/no-floating-promises': [
        'error',
        { allowForKnownSafeCalls: [{ from: 'package', package: 'node:test', name: ['describe', 'it', 'test', 'suite'] }] },
      ],
    },
  },
  {
    files: ['workflows/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['node:*', 'fs', 'path', 'crypto', 'http', 'https', 'net', 'os', 'child_process'],
              message: 'Workflow code must be deterministic: no Node built-ins (use an activity).',
            },
            {
              group: ['openai', 'express', 'pino', 'onnxruntime-node', 'node-llama-cpp', '@temporalio/client', '@temporalio/worker', '@temporalio/activity'],
              message: 'Workflow code must not call SDKs or do I/O (use an activity).',
            },
            {
              group: ['../activities/*', '../server/*', '../farm/*', '../config/*'],
              allowTypeImports: true,
              message: 'Workflows may import only types from these folders.',
            },
          ],
        },
      ],
    },
  },
  {
    files: ['**/*.js', '**/*.mjs'],
    languageOptions: { globals: { process: 'readonly', console: 'readonly', URL: 'readonly' } },
  },
);
