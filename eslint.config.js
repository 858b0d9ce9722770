import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', '.tmp/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-constant-condition': ['error', { checkLoops: false }],
    },
  },
  {
    files: ['shared/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: ['**/packer/**', '**/loader/**'] }],
    },
  },
  {
    files: ['packer/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: ['**/loader/**'] }] },
  },
  {
    files: ['loader/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: ['**/packer/**'] }] },
  },
);
