/** GET /health: 200 once the model is loaded; 503 while it loads or when loading failed. */
import type { FastifyInstance } from 'fastify';
import type { ServerState } from '../state.js';

export function healthRoute(app: FastifyInstance, state: ServerState): void {
  app.get('/health', { config: { public: true } }, async (_request, reply) => {
    if (state.pipeline) return { status: 'ok', model: state.modelId };
    reply.code(503);
    return state.loadError ? { status: 'error', error: 'the model failed to load' } : { status: 'loading' };
  });
}
