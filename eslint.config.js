// Lint, including the layering rule of docs/ARCHITECTURE.md: dependencies point down only.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';

const layer = (files, forbidden, why) => ({
  files,
  rules: {
    'no-restricted-imports': [
      'error',
      { patterns: forbidden.map((group) => ({ group: [group], message: why })) },
    ],
  },
});

const FEATURES = ['vms', 'checkpoints', 'memory', 'network', 'storage', 'console', 'jobs'];
const TOP = ['daemon', 'cli', 'api', 'web'];
const up = (names) => names.flatMap((n) => [`**/${n}/**`, `**/${n}/*.js`, `../${n}`, `../../${n}`]);

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'guests/build/**', 'web/vendor/**', 'guests/out/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { ...globals.node } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
      'no-console': 'off',
    },
  },
  layer(['src/core/**/*.ts'], up(['store', 'host', 'engine', ...FEATURES, ...TOP]), 'core/ imports nothing of ours.'),
  layer(['src/engine/**/*.ts', 'src/store/**/*.ts', 'src/host/**/*.ts'], up([...FEATURES, ...TOP]), 'engine/, store/ and host/ sit below the features.'),
  layer(FEATURES.map((f) => `src/${f}/**/*.ts`), up(TOP), 'Features never import daemon/, cli/, api/ or web/.'),
  layer(['src/api/**/*.ts'], up(['daemon', 'cli', 'web', 'store', 'host', 'engine', ...FEATURES]), 'api/ is schemas and a client: no I/O.'),
  layer(['src/cli/**/*.ts', 'web/**/*.ts'], up(['daemon', 'store', 'host', 'engine', ...FEATURES]), 'Front ends speak only the public API (api/).'),
);
