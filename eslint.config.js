// Shared lint rules live in tooling/eslint; this file only points at them.
export { default } from './tooling/eslint/eslint.config.js';
