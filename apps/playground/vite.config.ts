import { fileURLToPath } from 'node:url';
import { defineConfig, type Plugin } from 'vite';
import { serveModels } from './serve-models.js';

// Threads need a cross-origin isolated page; the fixture model is served at /models/tiny-brown/.
const isolation = { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp' };
const models = fileURLToPath(new URL('../../tooling/fixtures/models', import.meta.url));

const fixtureModels: Plugin = {
  name: 'lithe-fixture-models',
  configureServer: (server) => void server.middlewares.use('/models', serveModels(models)),
  configurePreviewServer: (server) => void server.middlewares.use('/models', serveModels(models)),
};

export default defineConfig({
  plugins: [fixtureModels],
  server: { headers: isolation },
  preview: { headers: isolation },
  worker: { format: 'es' },
  build: { target: 'es2022' },
});
