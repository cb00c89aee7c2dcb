/**
 * The Cascade configuration file (YAML), validated with zod at start-up. One file describes the
 * server, Temporal, the model registry (models, their deployments on pools, prices, context
 * windows, latency), the pools, and the policies (ladders of models with an evaluator and a
 * threshold per step). Field names are snake_case as written in YAML.
 */
import { z } from 'zod';
import { evaluatorSpecSchema } from '../evaluators/spec.js';
import { LEARN_DEFAULTS } from '../workflows/learn.js';
import { CONTINUATION_STYLES } from '../common/continuation.js';

const positiveMs = z.number().int().positive();

export const deploymentSchema = z
  .object({
    /** Defaults to `<model>@<pool>`; set it when one pool serves the model through two endpoints. */
    id: z.string().min(1).optional(),
    pool: z.string().min(1),
    base_url: z.url(),
    /** Name of the environment variable that holds the API key (the key itself never goes in config). */
    api_key_env: z.string().min(1).optional(),
    /** Model name the endpoint expects, when it differs from the registry name. */
    upstream_model: z.string().min(1).optional(),
    /** false for endpoints that cannot stream. */
    stream: z.boolean().default(true),
    /** This endpoint's context window when it differs from the model's (e.g. vLLM started with a shorter --max-model-len). */
    context_window: z.number().int().positive().optional(),
    /** Extra headers sent to this endpoint (e.g. an organisation id). Not for secrets. */
    headers: z.record(z.string(), z.string()).optional(),
    /**
     * How this endpoint continues an assistant message it is given (assistant-prefix continuation,
     * docs/streaming.md): `vllm` (vLLM, recent llama.cpp: `continue_final_message`), `prefix`
     * (DeepSeek beta, Mistral: `prefix: true` on the last message), `none` (cannot: a live stream
     * broken after text was sent is regenerated from scratch elsewhere).
     */
    continuation: z.enum(CONTINUATION_STYLES).default('none'),
  })
  .strict();

export const modelSchema = z
  .object({
    input_usd_per_1m: z.number().nonnegative(),
    output_usd_per_1m: z.number().nonnegative(),
    context_window: z.number().int().positive(),
    /** Typical latency of one answer; measured latencies replace it once the router has seen some. */
    latency_ms: z.object({ p50: positiveMs, p99: positiveMs }).strict().default({ p50: 2000, p99: 10000 }),
    expected_output_tokens: z.number().int().positive().default(300),
    timeouts: z
      .object({
        first_token_ms: positiveMs.default(15000),
        stream_idle_ms: positiveMs.default(10000),
        attempt_ms: positiveMs.default(120000),
      })
      .strict()
      .default({ first_token_ms: 15000, stream_idle_ms: 10000, attempt_ms: 120000 }),
    /** Where the model runs, in order of preference. */
    deployments: z.array(deploymentSchema).min(1),
    /** Equivalent deployments used only after every deployment above has failed (another provider, region, ...). */
    fallbacks: z.array(deploymentSchema).default([]),
    aliases: z.array(z.string().min(1)).default([]),
    description: z.string().optional(),
  })
  .strict();

export const policyStepSchema = z
  .object({
    model: z.string().min(1),
    evaluator: evaluatorSpecSchema.default({ type: 'none' }),
    threshold: z.number().min(0).max(1).default(0.5),
    /**
     * Streaming evaluation (evaluators/prefix.ts): stop this step's call as soon as its answer is
     * certain to be rejected. On by default wherever the evaluator can judge a prefix; `false` turns it off.
     */
    early_abort: z
      .union([
        z.literal(false),
        z
          .object({
            logprob_min_tokens: z.number().int().min(1).default(32),
            logprob_margin: z.number().min(0).max(1).default(0.2),
            max_tokens: z.number().int().positive().nullable().default(null),
          })
          .strict(),
      ])
      .optional(),
    /** Start the next step alongside this one (docs: README, "Latency"). The first acceptable answer wins. */
    hedge: z
      .object({
        /** Hedge when the pre-router's P(this step is accepted) is below this. */
        below_p: z.number().min(0).max(1).optional(),
        /** Hedge when the deadline left cannot fit this step and the next back to back. */
        on_deadline: z.boolean().optional(),
        /** Hedge when this step has not been accepted after this many ms (tail latency). */
        after_ms: z.number().int().positive().optional(),
      })
      .strict()
      .optional(),
    /** Pools this step prefers, in order (e.g. faster hardware); the model's other deployments follow. */
    pools: z.array(z.string().min(1)).min(1).optional(),
  })
  .strict();

export const policySchema = z
  .object({
    name: z.string().min(1).optional(),
    description: z.string().optional(),
    steps: z.array(policyStepSchema).min(1),
    evaluate_last_step: z.boolean().default(false),
    deadline_ms: positiveMs.default(60000),
    max_cost_usd: z.number().positive().default(1),
    prerouter: z
      .object({ model_file: z.string().min(1), skip_below: z.number().min(0).max(1) })
      .strict()
      .optional(),
    /**
     * Learning from traffic (docs/evaluators.md, "Learning from traffic"): a step whose recent
     * acceptance no longer pays for its own cost is skipped, one request in `probe_every` still runs
     * it. On by default; `false` turns it off.
     */
    learn: z
      .union([
        z.literal(false),
        z
          .object({
            window: z.number().int().min(10).max(10_000).default(LEARN_DEFAULTS.window),
            min_samples: z.number().int().min(1).default(LEARN_DEFAULTS.min_samples),
            probe_every: z.number().int().min(1).default(LEARN_DEFAULTS.probe_every),
            margin: z.number().min(0).max(10).default(LEARN_DEFAULTS.margin),
            refresh_ms: z.number().int().min(100).default(LEARN_DEFAULTS.refresh_ms),
          })
          .strict()
          .refine((l) => l.min_samples <= l.window, { message: 'min_samples must not exceed window', path: ['min_samples'] }),
      ])
      .default(LEARN_DEFAULTS),
  })
  .strict();

export const poolSchema = z
  .object({
    task_queue: z.string().min(1).optional(),
    /** Concurrent model calls one worker process of this pool runs. */
    concurrency: z.number().int().positive().default(16),
    /** Worker processes `npm start` runs for this pool. */
    workers: z.number().int().positive().default(1),
    /**
     * How model calls reach the pool: `task-queue` (a pool worker polls the pool's task queue; put
     * it next to its hardware) or `local` (the router worker calls the endpoint itself as a local
     * activity, `concurrency` calls at a time per router worker: fewer round trips, for plain HTTP
     * endpoints). README, "Dispatch modes", says what each keeps across crashes.
     */
    dispatch: z.enum(['task-queue', 'local']).default('task-queue'),
  })
  .strict();

/**
 * What a key may do (a tier in `keys.tiers`, or one key's overrides in the keys file): a $ budget
 * per UTC day and month, a rate limit per minute, the policy `cascade` means for it, and the
 * policies and models it may ask for. Absent = unlimited / everything.
 */
export const keyLimitsSchema = z
  .object({
    budget_usd: z.object({ day: z.number().positive().optional(), month: z.number().positive().optional() }).strict().optional(),
    rate_limit: z
      .object({ requests_per_minute: z.number().int().positive().optional(), tokens_per_minute: z.number().int().positive().optional() })
      .strict()
      .optional(),
    /** The policy `model: "cascade"` runs for this key. */
    default_policy: z.string().min(1).optional(),
    /** `cascade:<policy>` and model names (or aliases) the key may ask for; `cascade` is always its default policy. */
    allow: z.array(z.string().min(1)).min(1).optional(),
    /**
     * What the ledger shows this key (`/v1/usage`, `/v1/cascade/{id}`): `own` requests only, or
     * `all` keys' (an operator's view). Absent = `all`.
     */
    usage: z.enum(['own', 'all']).optional(),
  })
  .strict();

export const configSchema = z
  .object({
    server: z
      .object({
        host: z.string().default('127.0.0.1'),
        port: z.number().int().min(0).max(65535).default(8080),
        max_body_bytes: z.number().int().positive().default(1_048_576),
        /** Env var with comma-separated API keys; when unset, the API accepts requests without a key. */
        api_keys_env: z.string().optional(),
        /** Log prompt and answer text (off by default: the router sees every prompt). */
        log_prompts: z.boolean().default(false),
        /** Request headers passed on to every upstream call (e.g. the farm's x-farm-fault in tests). */
        forward_headers: z.array(z.string().min(1)).default([]),
        /**
         * URL at which model-call workers reach this API process to stream live answers
         * (common/stream.ts). Default: the address the client's connection came in on, which is
         * right on one host; set it when workers see the API under another address.
         */
        stream_callback_url: z.string().url().optional(),
        /** API processes `npm start` runs on the one port: while one restarts, the others answer. */
        processes: z.number().int().positive().max(16).default(2),
      })
      .strict()
      .default({ host: '127.0.0.1', port: 8080, max_body_bytes: 1_048_576, log_prompts: false, forward_headers: [], processes: 2 }),
    temporal: z
      .object({
        address: z.string().default('127.0.0.1:7233'),
        namespace: z.string().default('default'),
        /** Task queue of the router workers (cascade workflows). */
        task_queue: z.string().min(1).default('cascade-router'),
        /** Router worker processes `npm start` runs: while one restarts, the others run every workflow. */
        router_workers: z.number().int().positive().max(16).default(2),
        /**
         * Each API process also runs a router worker and starts its chat workflows eagerly on it:
         * the first workflow task comes back with the start response instead of through a poll
         * (README "Dispatch modes"). The router worker processes still run everything else.
         */
        embedded_router: z.boolean().default(true),
        /**
         * The SDK's per-promise stack-trace hook in processes that run workflows (the UI's "Stack
         * Trace" tab of a running workflow). Off by default: it costs ~4 ms CPU per request
         * (workers/workflow-threads.mjs). Applies to the processes `npm start` runs.
         */
        workflow_stack_traces: z.boolean().default(false),
        /** When set, `npm start` runs a Temporal dev server with this persistence file. */
        dev_server: z
          .object({ db_file: z.string().min(1), ui_port: z.number().int().positive().default(8233) })
          .strict()
          .optional(),
      })
      .strict()
      .default({
        address: '127.0.0.1:7233',
        namespace: 'default',
        task_queue: 'cascade-router',
        router_workers: 2,
        embedded_router: true,
        workflow_stack_traces: false,
      }),
    /** Payload encryption of everything Cascade writes to Temporal (docs/operations.md). */
    encryption: z
      .object({
        enabled: z.boolean().default(true),
        /** Key file, relative to this file; generated on first start when missing. */
        key_file: z.string().min(1).default('../.data/encryption-keys'),
        /** Environment variable that, when set, holds the keys instead of the file. */
        keys_env: z.string().min(1).default('CASCADE_ENCRYPTION_KEYS'),
        /** Port (on 127.0.0.1) of the codec endpoint the Temporal UI decodes payloads with; 0 = none. */
        codec_port: z.number().int().min(0).max(65535).default(8234),
        /** Browser origins allowed to call the codec endpoint (default: any page on 127.0.0.1 or localhost). */
        codec_allow_origins: z.array(z.string().min(1)).default([]),
      })
      .strict()
      .default({ enabled: true, key_file: '../.data/encryption-keys', keys_env: 'CASCADE_ENCRYPTION_KEYS', codec_port: 8234, codec_allow_origins: [] }),
    /** When set, `npm start` also runs the model farm with this config (the embedded default). */
    farm: z
      .object({ config: z.string().min(1) })
      .strict()
      .optional(),
    retry: z
      .object({
        initial_interval_ms: positiveMs.default(500),
        backoff_coefficient: z.number().min(1).default(2),
        maximum_interval_ms: positiveMs.default(10000),
        maximum_attempts: z.number().int().min(1).max(10).default(3),
        schedule_to_start_timeout_ms: positiveMs.default(3000),
      })
      .strict()
      .default({ initial_interval_ms: 500, backoff_coefficient: 2, maximum_interval_ms: 10000, maximum_attempts: 3, schedule_to_start_timeout_ms: 3000 }),
    breaker: z
      .object({
        /** Consecutive failed calls that open a deployment's circuit. */
        failure_threshold: z.number().int().positive().default(3),
        /** How long an open circuit skips the deployment before one probe call is let through. */
        open_ms: positiveMs.default(2000),
      })
      .strict()
      .default({ failure_threshold: 3, open_ms: 2000 }),
    /** Long-document jobs (POST /v1/documents): limits, chunking and where texts and results are kept. */
    documents: z
      .object({
        /** Largest document accepted (bytes of text, or of the uploaded file). */
        max_bytes: z.number().int().positive().default(33_554_432),
        /** Chunk size and the overlap carried from one chunk into the next (estimated tokens). */
        chunk_tokens: z.number().int().min(16).default(1000),
        overlap_tokens: z.number().int().nonnegative().default(100),
        /** Chunks in flight at once per job. */
        concurrency: z.number().int().positive().max(256).default(8),
        /** Directory of the filesystem document store, relative to this file. */
        store_dir: z.string().min(1).default('../.data/documents'),
        /** A job continues as new once its history has this many events (keeps every history small). */
        history_events_limit: z.number().int().min(100).default(10_000),
        /** Rounds in which chunks whose cascade failed are run again (the rest are never rerun). */
        retry_failed_rounds: z.number().int().nonnegative().max(5).default(1),
        /** Wait before such a rerun: chunks usually fail together, in an outage that needs time to pass. */
        retry_failed_after_ms: z.number().int().nonnegative().default(30_000),
        /** Hosts webhook_url may name (exact, or `*.example.com`); empty = webhooks are refused. */
        webhook_allow_hosts: z.array(z.string().min(1)).default([]),
        /** Policy a task's job runs when it asks for `cascade` (the default policy otherwise). */
        task_policies: z
          .object({ summarize: z.string().min(1), extract: z.string().min(1), classify: z.string().min(1), qa: z.string().min(1) })
          .partial()
          .strict()
          .default({}),
      })
      .strict()
      .default({
        max_bytes: 33_554_432,
        chunk_tokens: 1000,
        overlap_tokens: 100,
        concurrency: 8,
        store_dir: '../.data/documents',
        history_events_limit: 10_000,
        retry_failed_rounds: 1,
        retry_failed_after_ms: 30_000,
        webhook_allow_hosts: [],
        task_policies: {},
      }),
    /** API keys with budgets and limits (docs/operations.md, "Keys, budgets and rate limits"). */
    keys: z
      .object({
        /** Hashed keys written by `npm run keys` (SHA-256 digests, never the keys), relative to this file. */
        file: z.string().min(1).default('../.data/api-keys.json'),
        /** Tier of the keys in `server.api_keys_env` (the quick-start path). */
        env_tier: z.string().min(1).default('default'),
        tiers: z.record(z.string().min(1), keyLimitsSchema).default({ default: {} }),
      })
      .strict()
      .default({ file: '../.data/api-keys.json', env_tier: 'default', tiers: { default: {} } }),
    pools: z.record(z.string().min(1), poolSchema),
    models: z.record(z.string().min(1), modelSchema),
    policies: z.record(z.string().min(1), policySchema).default({}),
    /** Policy files (e.g. written by `npm run calibrate`), relative to this file. */
    policy_files: z.array(z.string().min(1)).default([]),
    default_policy: z.string().min(1),
  })
  .strict();

export type RawConfig = z.infer<typeof configSchema>;
export type DeploymentConfig = z.infer<typeof deploymentSchema>;
export type ModelConfig = z.infer<typeof modelSchema>;
export type PolicyConfig = z.infer<typeof policySchema>;
export type KeyLimits = z.infer<typeof keyLimitsSchema>;
