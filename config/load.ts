/**
 * Loads and validates the Cascade config, then resolves it into what the processes need:
 * model infos for workflow inputs, endpoints for pool workers, and policy lookup for the API.
 * Errors name the file and the field.
 */
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import type { DeploymentRef, ModelInfo, PolicySpec, RetrySettings } from '../common/types.js';
import type { ContinuationStyle } from '../common/continuation.js';
import { interpolate } from '../common/interpolate.js';
import { poolTaskQueue } from '../common/names.js';
import { REPO_ROOT } from '../common/paths.js';
import { configSchema, policySchema, type DeploymentConfig, type KeyLimits, type RawConfig } from './schema.js';

export { REPO_ROOT };
export const DEFAULT_CONFIG_PATH = resolve(REPO_ROOT, 'config', 'cascade.yaml');

export class ConfigError extends Error {
  override name = 'ConfigError';
}

export interface ResolvedDeployment {
  ref: DeploymentRef;
  model: string;
  baseUrl: string;
  apiKeyEnv: string | null;
  upstreamModel: string;
  stream: boolean;
  headers?: Record<string, string>;
  continuation: ContinuationStyle;
}

export interface CascadeConfig {
  file: string;
  raw: RawConfig;
  policies: Map<string, PolicySpec>;
  models: Map<string, ModelInfo>;
  deployments: Map<string, ResolvedDeployment>;
  retry: RetrySettings;
  /** Absolute path of the farm config, when the embedded farm is enabled. */
  farmConfigPath: string | null;
  /** Absolute path of the hashed API keys file (`npm run keys`); auth is on once it exists. */
  keysFilePath: string;
}

function describeIssues(file: string, error: z.ZodError): string {
  const lines = error.issues.map((issue) => {
    const path = issue.path
      .map((p) => (typeof p === 'number' ? `[${p}]` : /^[\w-]+$/.test(String(p)) ? `.${String(p)}` : `["${String(p)}"]`))
      .join('')
      .replace(/^\./, '');
    return `  ${path || '(root)'}: ${issue.message}`;
  });
  return `invalid config ${file}:\n${lines.join('\n')}`;
}

function readYaml(file: string, env: NodeJS.ProcessEnv): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read config ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  try {
    return interpolate(parseYaml(text), env);
  } catch (err) {
    throw new ConfigError(`config ${file} is not valid YAML: ${(err as Error).message}`);
  }
}

export function loadConfig(file: string = process.env.CASCADE_CONFIG ?? DEFAULT_CONFIG_PATH, env: NodeJS.ProcessEnv = process.env): CascadeConfig {
  const path = isAbsolute(file) ? file : resolve(process.cwd(), file);
  const parsed = configSchema.safeParse(readYaml(path, env));
  if (!parsed.success) throw new ConfigError(describeIssues(path, parsed.error));
  return resolveConfig(path, parsed.data, env);
}

/** Resolves a validated config; exported for tests that build configs in code. */
export function resolveConfig(path: string, raw: RawConfig, env: NodeJS.ProcessEnv = process.env): CascadeConfig {
  const problems: string[] = [];
  const base = dirname(path);

  const deployments = new Map<string, ResolvedDeployment>();
  const models = new Map<string, ModelInfo>();
  const aliasOwner = new Map<string, string>();
  for (const [name, m] of Object.entries(raw.models)) {
    const refs: DeploymentRef[] = [];
    const add = (d: DeploymentConfig, fallback: boolean, where: string) => {
      const pool = raw.pools[d.pool];
      if (!pool) problems.push(`${where}.pool: unknown pool "${d.pool}" (pools: ${Object.keys(raw.pools).join(', ')})`);
      const id = d.id ?? `${name}@${d.pool}`;
      if (deployments.has(id)) problems.push(`${where}: deployment id "${id}" is used twice; give one an explicit id`);
      const ref: DeploymentRef = {
        id,
        pool: d.pool,
        taskQueue: pool?.task_queue ?? poolTaskQueue(d.pool),
        fallback,
        ...(pool?.dispatch === 'local' && { dispatch: 'local' as const }),
        ...(d.context_window !== undefined && { contextWindow: d.context_window }),
        ...(d.continuation !== 'none' && { continuation: d.continuation }),
      };
      refs.push(ref);
      deployments.set(id, {
        ref,
        model: name,
        baseUrl: d.base_url,
        apiKeyEnv: d.api_key_env ?? null,
        upstreamModel: d.upstream_model ?? name,
        stream: d.stream,
        headers: d.headers,
        continuation: d.continuation,
      });
    };
    m.deployments.forEach((d, i) => add(d, false, `models.${name}.deployments[${i}]`));
    m.fallbacks.forEach((d, i) => add(d, true, `models.${name}.fallbacks[${i}]`));
    for (const alias of m.aliases) {
      if (raw.models[alias] || aliasOwner.has(alias)) problems.push(`models.${name}.aliases: "${alias}" is already a model name or alias`);
      aliasOwner.set(alias, name);
    }
    if (m.latency_ms.p99 < m.latency_ms.p50) problems.push(`models.${name}.latency_ms: p99 is below p50`);
    models.set(name, {
      name,
      inputUsdPer1M: m.input_usd_per_1m,
      outputUsdPer1M: m.output_usd_per_1m,
      contextWindow: m.context_window,
      p50LatencyMs: m.latency_ms.p50,
      p99LatencyMs: m.latency_ms.p99,
      expectedOutputTokens: m.expected_output_tokens,
      firstTokenTimeoutMs: m.timeouts.first_token_ms,
      streamIdleTimeoutMs: m.timeouts.stream_idle_ms,
      attemptTimeoutMs: m.timeouts.attempt_ms,
      deployments: refs,
    });
  }

  const policies = new Map<string, PolicySpec>();
  const addPolicy = (key: string, p: z.infer<typeof policySchema>, where: string) => {
    const name = p.name ?? key;
    if (policies.has(name)) problems.push(`${where}: policy "${name}" is defined twice`);
    p.steps.forEach((s, i) => {
      if (!models.has(s.model)) problems.push(`${where}.steps[${i}].model: unknown model "${s.model}" (models: ${[...models.keys()].join(', ')})`);
      const judge =
        s.evaluator.type === 'judge' ? s.evaluator.model : s.evaluator.type === 'min' ? s.evaluator.of.find((e) => e.type === 'judge')?.model : undefined;
      if (judge && !models.has(judge)) problems.push(`${where}.steps[${i}].evaluator.model: unknown judge model "${judge}"`);
      for (const pool of s.pools ?? [])
        if (!raw.pools[pool]) problems.push(`${where}.steps[${i}].pools: unknown pool "${pool}" (pools: ${Object.keys(raw.pools).join(', ')})`);
      if (s.hedge?.below_p !== undefined && !p.prerouter) problems.push(`${where}.steps[${i}].hedge.below_p: needs the policy's prerouter`);
      if (s.hedge && i === p.steps.length - 1) problems.push(`${where}.steps[${i}].hedge: the last step has no next step to hedge with`);
      // A local activity holds the workflow task open, so no timer can fire while it runs.
      const local = raw.models[s.model]?.deployments.concat(raw.models[s.model]?.fallbacks ?? []).some((d) => raw.pools[d.pool]?.dispatch === 'local');
      if (s.hedge?.after_ms !== undefined && local)
        problems.push(`${where}.steps[${i}].hedge.after_ms: needs task-queue dispatch (a local call holds the workflow task; no timer fires during it)`);
    });
    policies.set(name, {
      ...p,
      name,
      steps: p.steps.map((s) => ({
        model: s.model,
        evaluator: s.evaluator,
        threshold: s.threshold,
        ...(s.early_abort !== undefined && { early_abort: s.early_abort }),
        ...(s.hedge && { hedge: s.hedge }),
        ...(s.pools && { pools: s.pools }),
      })),
    });
  };
  for (const [key, p] of Object.entries(raw.policies)) addPolicy(key, p, `policies.${key}`);
  for (const rel of raw.policy_files) {
    const file = resolve(base, rel);
    const parsed = policySchema.safeParse(readYaml(file, env));
    if (!parsed.success) throw new ConfigError(describeIssues(file, parsed.error));
    addPolicy(parsed.data.name ?? rel, parsed.data, `policy_files[${file}]`);
  }
  if (!policies.has(raw.default_policy))
    problems.push(`default_policy: unknown policy "${raw.default_policy}" (policies: ${[...policies.keys()].join(', ') || 'none'})`);
  for (const [task, name] of Object.entries(raw.documents.task_policies)) {
    if (!policies.has(name)) problems.push(`documents.task_policies.${task}: unknown policy "${name}" (policies: ${[...policies.keys()].join(', ')})`);
  }

  problems.push(...keyTierProblems(raw, policies));

  if (problems.length > 0) throw new ConfigError(`invalid config ${path}:\n${problems.map((p) => `  ${p}`).join('\n')}`);

  return {
    file: path,
    raw,
    policies,
    models,
    deployments,
    retry: {
      initialIntervalMs: raw.retry.initial_interval_ms,
      backoffCoefficient: raw.retry.backoff_coefficient,
      maximumIntervalMs: raw.retry.maximum_interval_ms,
      maximumAttempts: raw.retry.maximum_attempts,
      scheduleToStartTimeoutMs: raw.retry.schedule_to_start_timeout_ms,
    },
    farmConfigPath: raw.farm ? resolve(base, raw.farm.config) : null,
    keysFilePath: resolve(base, raw.keys.file),
  };
}

/** Tiers name policies and models that exist, and the env keys' tier is one of them. */
function keyTierProblems(raw: RawConfig, policies: Map<string, PolicySpec>): string[] {
  const problems: string[] = [];
  if (!raw.keys.tiers[raw.keys.env_tier])
    problems.push(`keys.env_tier: unknown tier "${raw.keys.env_tier}" (tiers: ${Object.keys(raw.keys.tiers).join(', ') || 'none'})`);
  for (const [tier, t] of Object.entries(raw.keys.tiers)) problems.push(...keyLimitsProblems(raw, policies, t, `keys.tiers.${tier}`));
  return problems;
}

/** A tier's or a key's limits name policies and models that exist (`where` prefixes each problem). */
export function keyLimitsProblems(raw: RawConfig, policies: ReadonlyMap<string, PolicySpec>, limits: KeyLimits, where: string): string[] {
  const problems: string[] = [];
  const isModel = (name: string) => !!raw.models[name] || Object.values(raw.models).some((m) => m.aliases.includes(name));
  if (limits.default_policy && !policies.has(limits.default_policy)) problems.push(`${where}.default_policy: unknown policy "${limits.default_policy}"`);
  limits.allow?.forEach((entry, i) => {
    const ok = entry.startsWith('cascade:') ? policies.has(entry.slice('cascade:'.length)) : isModel(entry);
    if (!ok) problems.push(`${where}.allow[${i}]: "${entry}" is neither cascade:<policy> nor a model`);
  });
  return problems;
}

export type Target = { kind: 'policy'; policy: PolicySpec } | { kind: 'model'; policy: PolicySpec };

/**
 * What the request's `model` selects: `cascade` (the default policy), `cascade:<policy>`, or a
 * registry model or alias (a one-step durable call with its fallbacks). null when unknown.
 */
/**
 * What a request's `model` runs. `task` (document jobs): `cascade` runs the task's policy from
 * `documents.task_policies` when one is configured.
 */
export function resolveTarget(config: CascadeConfig, requested: string, task?: keyof RawConfig['documents']['task_policies']): Target | null {
  if (requested === 'cascade') {
    const name = (task && config.raw.documents.task_policies[task]) ?? config.raw.default_policy;
    return { kind: 'policy', policy: config.policies.get(name)! };
  }
  if (requested.startsWith('cascade:')) {
    const policy = config.policies.get(requested.slice('cascade:'.length));
    return policy ? { kind: 'policy', policy } : null;
  }
  const name = config.models.has(requested) ? requested : Object.entries(config.raw.models).find(([, m]) => m.aliases.includes(requested))?.[0];
  if (!name) return null;
  const defaults = config.policies.get(config.raw.default_policy)!;
  return {
    kind: 'model',
    policy: {
      name: `model:${name}`,
      steps: [{ model: name, evaluator: { type: 'none' }, threshold: 0 }],
      evaluate_last_step: false,
      deadline_ms: defaults.deadline_ms,
      max_cost_usd: defaults.max_cost_usd,
    },
  };
}

/** The models a policy needs in the workflow input (its ladder plus any judge). */
export function modelsForPolicy(config: CascadeConfig, policy: PolicySpec): Record<string, ModelInfo> {
  const out: Record<string, ModelInfo> = {};
  const visit = (spec: { type: string; model?: unknown; of?: unknown }) => {
    if (spec.type === 'judge' && typeof spec.model === 'string') out[spec.model] = config.models.get(spec.model)!;
    if (spec.type === 'min' && Array.isArray(spec.of)) spec.of.forEach(visit);
  };
  for (const step of policy.steps) {
    out[step.model] = config.models.get(step.model)!;
    visit(step.evaluator);
  }
  return out;
}
