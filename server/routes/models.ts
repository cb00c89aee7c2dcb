/** GET /v1/models — the cascade policies (`cascade`, `cascade:<policy>`) and every configured model. */
import type { RequestHandler } from 'express';
import type { CascadeConfig } from '../../config/load.js';

export function modelsRoute(config: CascadeConfig): RequestHandler {
  const created = Math.floor(Date.now() / 1000);
  const policies = [...config.policies.values()];
  const data = [
    { id: 'cascade', object: 'model', created, owned_by: 'cascade', description: `default policy: ${config.raw.default_policy}` },
    ...policies.map((p) => ({
      id: `cascade:${p.name}`,
      object: 'model',
      created,
      owned_by: 'cascade',
      description: p.description ?? p.steps.map((s) => s.model).join(' → '),
    })),
    ...[...config.models.values()].map((m) => ({
      id: m.name,
      object: 'model',
      created,
      owned_by: 'cascade-registry',
      context_window: m.contextWindow,
      pricing: { input_usd_per_1m: m.inputUsdPer1M, output_usd_per_1m: m.outputUsdPer1M },
      pools: [...new Set(m.deployments.map((d) => d.pool))],
    })),
  ];
  return (_req, res) => {
    res.json({ object: 'list', data });
  };
}
