/**
 * Rollout routes: POST /v1/rollouts (start), GET /v1/rollouts[/:id],
 * GET /v1/rollouts/:id/history, POST /v1/rollouts/:id/{pause,resume,promote,abort,rollback}.
 * Registered on the hub's fastify app, so they share its error handler, the
 * auth guard and the OpenAPI document.
 */
import type { FastifyInstance } from 'fastify';

// The hub's app is typed with its pino Logger; these routes need nothing logger-specific.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type App = FastifyInstance<any, any, any, any>;
import { errorBody } from '../api-schemas.js';
import { actorOf } from '../auth/guard.js';
import * as S from './api-schemas.js';
import { ROLLOUT_ACTION_NAMES, ROLLOUT_ACTIONS } from './actions.js';
import type { Rollouts } from './rollouts.js';

export function registerRolloutRoutes(app: App, rollouts: Rollouts): void {
  const errors = { '4xx': errorBody.json, '5xx': errorBody.json };
  app.post('/v1/rollouts', { config: { access: 'operator', leader: true },
    schema: { summary: 'Start a staged rollout of NAME@VERSION through rings with gates (operator)', body: S.startBody.json, response: { 201: S.rolloutStatus.json, ...errors } },
  }, async (req, reply) => {
    const b = req.body as S.StartBody;
    const st = rollouts.start(b, actorOf(req));
    req.log.info({ rolloutId: st.id, name: b.name, version: b.version }, 'rollout started');
    reply.code(201);
    return st;
  });
  app.get('/v1/rollouts', { config: { access: 'auditor' }, schema: { summary: 'Every rollout, newest first (auditor)', response: { 200: S.rolloutList.json, ...errors } } },
    async () => ({ rollouts: rollouts.list() }));
  app.get('/v1/rollouts/:id', { config: { access: 'auditor' }, schema: { summary: 'One rollout: rings, device counts per state, last gate values (auditor)', params: S.rolloutIdParams.json, response: { 200: S.rolloutStatus.json, ...errors } } },
    async (req) => rollouts.status((req.params as { id: string }).id));
  app.get('/v1/rollouts/:id/history', { config: { access: 'auditor' }, schema: { summary: 'Every decision of a rollout: who, when, why and the gate values (auditor)', params: S.rolloutIdParams.json, response: { 200: S.history.json, ...errors } } },
    async (req) => { const { id } = req.params as { id: string }; return { rolloutId: id, decisions: rollouts.history(id) }; });
  // One route per row of the action table, with the row's role; the table checks the state.
  for (const action of ROLLOUT_ACTION_NAMES) {
    const row = ROLLOUT_ACTIONS[action];
    app.post(`/v1/rollouts/:id/${action}`, { config: { access: row.access, leader: true },
      schema: { summary: `${action[0].toUpperCase()}${action.slice(1)} a rollout: ${row.summary}; allowed from ${row.from.join(', ')} (${row.access}); recorded as a decision`, params: S.rolloutIdParams.json, body: S.actionBody.json, response: { 200: S.rolloutStatus.json, ...errors } },
    }, async (req) => {
      const { id } = req.params as { id: string };
      const reason = (req.body as { reason?: string } | undefined)?.reason;
      return rollouts.act(id, action, actorOf(req), reason);
    });
  }
}
