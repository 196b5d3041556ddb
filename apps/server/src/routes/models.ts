/** GET /v1/models and GET /v1/models/:id: the one model this server serves. */
import type { FastifyInstance } from 'fastify';
import { modelNotFound } from '../openai-errors.js';
import type { ServerState } from '../state.js';

export function modelsRoute(app: FastifyInstance, state: ServerState): void {
  const card = () => ({ id: state.modelId, object: 'model', created: state.created, owned_by: 'lithe' });
  app.get('/v1/models', async () => ({ object: 'list', data: [card()] }));
  app.get<{ Params: { '*': string } }>('/v1/models/*', async (request) => {
    // The id may contain slashes (e.g. org/name).
    if (request.params['*'] !== state.modelId) throw modelNotFound(state.modelId);
    return card();
  });
}
