/**
 * Farm configuration: the YAML schema (zod), loading, and path resolution.
 * Layouts (which pool serves which model, latencies, faults) are config, not code.
 */
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { interpolate } from '../common/interpolate.js';
import { FAULT_NAMES } from './faults.js';

export class FarmConfigError extends Error {
  override name = 'FarmConfigError';
}

const nonNegative = z.number().finite().nonnegative();
const probability = z.number().min(0).max(1);

/** `{fault, pool?, model?}`: config `faults` entries and the body of POST /farm/faults. */
export const faultRuleSchema = z
  .object({
    fault: z.enum(FAULT_NAMES),
    pool: z.string().min(1).optional(),
    model: z.string().min(1).optional(),
  })
  .strict();

const syntheticSchema = z
  .object({
    /** Answer length in tokens, chosen per prompt deterministically in [min, max]. */
    output_tokens: z
      .union([z.number().int().positive(), z.object({ min: z.number().int().positive(), max: z.number().int().positive() }).strict()])
      .default({ min: 40, max: 200 }),
    /** Confidence = exp(mean token logprob): `high_share` of prompts get `high`, the rest `low`. */
    confidence: z.object({ high: probability, low: probability, high_share: probability }).strict().default({ high: 0.9, low: 0.4, high_share: 0.7 }),
    /**
     * Share of `response_format: json_schema` requests answered with JSON that matches the schema
     * (chosen per prompt); the rest get the usual prose, which fails the schema. Default 0.
     */
    json_schema_share: probability.default(0),
  })
  .strict();

const modelSchema = z.discriminatedUnion('backend', [
  z
    .object({
      backend: z.literal('replay'),
      context_window: z.number().int().positive(),
      /** Name of the model in the dataset, when it is served under another name. */
      recorded_as: z.string().min(1).optional(),
      /** Settings used when a pool falls back to the synthetic backend for this model. */
      synthetic: syntheticSchema.optional(),
    })
    .strict(),
  z
    .object({
      backend: z.literal('synthetic'),
      context_window: z.number().int().positive(),
      synthetic: syntheticSchema.optional(),
    })
    .strict(),
  z
    .object({
      backend: z.literal('llama'),
      context_window: z.number().int().positive().optional(),
      gguf: z.string().min(1),
      threads: z.number().int().positive().optional(),
      context_size: z.number().int().positive().optional(),
      /** Default and cap of generated tokens per request (backend default 256). */
      max_tokens: z.number().int().positive().optional(),
      synthetic: syntheticSchema.optional(),
    })
    .strict(),
]);

const latencySchema = z
  .object({
    /** Time to first token. */
    ttft_ms: nonNegative.default(0),
    /** Generation speed after the first token; 0 = instant. */
    tokens_per_s: nonNegative.default(0),
    /** Relative jitter: every delay is multiplied by a random factor in [1 - jitter, 1 + jitter]. */
    jitter: z.number().min(0).max(1).default(0),
    /** When an answer has a recorded latency_ms, its total duration is recorded × this scale (0 = ignore recordings). */
    recorded_latency_scale: nonNegative.default(1),
  })
  .strict();

const poolSchema = z
  .object({
    port: z.number().int().min(0).max(65535),
    /** Generations in flight at once; requests beyond it queue. */
    concurrency: z.number().int().positive().default(8),
    /**
     * Who answers prompts a model's own backend cannot (e.g. not in the replay set): `synthetic`
     * (simulated text), the name of a `llama` model (a real local model answers, under its own
     * name), or null (404 prompt_not_recorded).
     */
    fallback: z.string().min(1).nullable().default(null),
    /** Model name → its latency on this pool. */
    models: z.record(
      z.string().min(1),
      latencySchema.nullable().transform((l) => l ?? latencySchema.parse({})),
    ),
  })
  .strict();

const farmSchema = z
  .object({
    host: z.string().default('127.0.0.1'),
    /** Root for dataset paths, relative to the config file; CASCADE_DATA_DIR overrides it. */
    data_root: z.string().default('.'),
    datasets: z.array(z.string().min(1)).default([]),
    max_body_bytes: z
      .number()
      .int()
      .positive()
      .default(4 * 1024 * 1024),
    attempt_log_limit: z.number().int().positive().default(100_000),
    fault_settings: z
      .object({
        slow_first_token_ms: nonNegative.default(3000),
        stall_ms: nonNegative.default(5000),
        flap_seconds: nonNegative.default(10),
      })
      .strict()
      .default({ slow_first_token_ms: 3000, stall_ms: 5000, flap_seconds: 10 }),
    /** Faults that are always on, scoped like the x-farm-fault header. */
    faults: z.array(faultRuleSchema).default([]),
    models: z.record(z.string().min(1), modelSchema),
    pools: z.record(z.string().regex(/^[A-Za-z0-9_.-]+$/, 'pool names use letters, digits, _ . -'), poolSchema),
  })
  .strict();

export type FaultRule = z.infer<typeof faultRuleSchema>;
export type SyntheticSettings = z.infer<typeof syntheticSchema>;
export type ModelConfig = z.infer<typeof modelSchema>;
export type LatencyConfig = z.infer<typeof latencySchema>;
export type PoolConfig = z.infer<typeof poolSchema>;
/** The config as written (YAML or object), before defaults. */
export type FarmConfigInput = z.input<typeof farmSchema>;

export type FarmConfig = z.infer<typeof farmSchema> & {
  /** Where the config came from, for error messages. */
  source: string;
  /** Absolute dataset paths, resolved against data_root (or CASCADE_DATA_DIR). */
  datasetPaths: string[];
  /** Absolute gguf path per llama model. */
  ggufPaths: Record<string, string>;
};

export const DEFAULT_SYNTHETIC: SyntheticSettings = syntheticSchema.parse({});

function describeIssues(source: string, error: z.ZodError): string {
  const lines = error.issues.map((i) => `  ${i.path.length ? i.path.join('.') : '(root)'}: ${i.message}`);
  return `${source}: invalid farm config\n${lines.join('\n')}`;
}

/**
 * Validates a config object and resolves its paths. `baseDir` is the folder relative paths start
 * from (the config file's folder); `env` supplies CASCADE_DATA_DIR.
 */
export function parseFarmConfig(raw: unknown, opts: { source?: string; baseDir?: string; env?: NodeJS.ProcessEnv } = {}): FarmConfig {
  const source = opts.source ?? '(farm config)';
  const baseDir = opts.baseDir ?? process.cwd();
  const env = opts.env ?? process.env;
  const parsed = farmSchema.safeParse(interpolate(raw, env));
  if (!parsed.success) throw new FarmConfigError(describeIssues(source, parsed.error));
  const cfg = parsed.data;

  const problems: string[] = [];
  const poolNames = Object.keys(cfg.pools);
  if (poolNames.length === 0) problems.push('pools: at least one pool is required');
  for (const [poolName, pool] of Object.entries(cfg.pools)) {
    if (Object.keys(pool.models).length === 0) problems.push(`pools.${poolName}.models: a pool must serve at least one model`);
    for (const model of Object.keys(pool.models)) {
      if (!cfg.models[model]) problems.push(`pools.${poolName}.models.${model}: model is not defined under "models"`);
    }
    if (pool.fallback !== null && pool.fallback !== 'synthetic' && cfg.models[pool.fallback]?.backend !== 'llama') {
      problems.push(`pools.${poolName}.fallback: "${pool.fallback}" is neither "synthetic" nor a model with backend "llama"`);
    }
  }
  cfg.faults.forEach((rule, i) => {
    if (rule.pool && !cfg.pools[rule.pool]) problems.push(`faults.${i}.pool: unknown pool "${rule.pool}"`);
    if (rule.model && !cfg.models[rule.model]) problems.push(`faults.${i}.model: unknown model "${rule.model}"`);
  });
  const usesReplay = Object.values(cfg.models).some((m) => m.backend === 'replay');
  if (usesReplay && cfg.datasets.length === 0) problems.push('datasets: replay models are configured but no dataset is listed');
  for (const [name, model] of Object.entries(cfg.models)) {
    const o = model.synthetic?.output_tokens;
    if (o && typeof o === 'object' && o.min > o.max) problems.push(`models.${name}.synthetic.output_tokens: min > max`);
    if (model.backend === 'llama' && !model.context_window && !model.context_size) {
      problems.push(`models.${name}: a llama model needs context_window or context_size`);
    }
  }
  if (problems.length) throw new FarmConfigError(`${source}: invalid farm config\n  ${problems.join('\n  ')}`);

  const dataRoot = env.CASCADE_DATA_DIR ? resolve(env.CASCADE_DATA_DIR) : resolve(baseDir, cfg.data_root);
  const ggufPaths: Record<string, string> = {};
  for (const [name, model] of Object.entries(cfg.models)) if (model.backend === 'llama') ggufPaths[name] = resolve(baseDir, model.gguf);
  return { ...cfg, source, datasetPaths: cfg.datasets.map((d) => resolve(dataRoot, d)), ggufPaths };
}

/** Reads and validates a YAML (or JSON) farm config file. Errors name the file and the bad field. */
export async function loadFarmConfig(path: string, env: NodeJS.ProcessEnv = process.env): Promise<FarmConfig> {
  const file = resolve(path);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new FarmConfigError(`${path}: cannot read farm config (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (err) {
    throw new FarmConfigError(`${path}: not valid YAML (${(err as Error).message})`);
  }
  return parseFarmConfig(raw, { source: path, baseDir: dirname(file), env });
}

/** Builds a config in code (tests, `npm start`): same validation as a file, paths relative to `baseDir`. */
export function defineFarmConfig(input: FarmConfigInput, opts: { baseDir?: string; env?: NodeJS.ProcessEnv } = {}): FarmConfig {
  return parseFarmConfig(input, { source: '(farm config in code)', ...opts });
}

/** The effective context window of a model. */
export function contextWindowOf(model: ModelConfig): number {
  if (model.backend === 'llama') return model.context_window ?? model.context_size ?? 4096;
  return model.context_window;
}
