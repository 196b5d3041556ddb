/** GET /metrics: Prometheus text format. */
import type { FastifyInstance } from 'fastify';
import type { ServerState } from '../state.js';

export function metricsRoute(app: FastifyInstance, state: ServerState): void {
  app.get('/metrics', { config: { public: true } }, async (_request, reply) => {
    reply.type('text/plain; version=0.0.4; charset=utf-8');
    return state.metrics.render();
  });
}
