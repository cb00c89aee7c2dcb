/**
 * Builds the farm's backends from its config: one replay backend over all datasets, one synthetic
 * backend (synthetic-only models and fallbacks), and the node-llama-cpp backend, loaded by dynamic
 * import only when a model uses `backend: llama`.
 */
import { access } from 'node:fs/promises';
import { contextWindowOf, DEFAULT_SYNTHETIC, FarmConfigError, type FarmConfig, type ModelConfig, type SyntheticSettings } from '../config.js';
import { createReplayBackend } from './replay.js';
import { createSyntheticBackend } from './synthetic.js';
import type { Backend } from './types.js';

export interface LlamaBackendOptions {
  models: { name: string; gguf: string; threads?: number; contextSize?: number; maxTokens?: number }[];
}
interface LlamaModule {
  createLlamaBackend(options: LlamaBackendOptions): Promise<Backend>;
}
/** A variable specifier: the llama backend is optional and written separately. */
const LLAMA_MODULE = './llama.js';

export interface FarmBackends {
  /** Model name → the backend that answers for it. */
  primary: Map<string, Backend>;
  /** Answers any configured model with simulated text (pool fallback). */
  synthetic: Backend;
  /** Distinct prompts indexed by the replay backend (0 without replay models). */
  replayPrompts: number;
  close(): Promise<void>;
}

async function mustExist(path: string, what: string, source: string): Promise<void> {
  try {
    await access(path);
  } catch {
    throw new FarmConfigError(`${source}: ${what}: file not found: ${path}`);
  }
}

const replayModelsOf = (models: [string, ModelConfig][]): Record<string, string> =>
  Object.fromEntries(models.filter(([, m]) => m.backend === 'replay').map(([name, m]) => [name, (m.backend === 'replay' && m.recorded_as) || name]));

/** Loads the datasets for the replay models (if any) and registers them; returns the distinct prompts indexed. */
async function loadReplay(config: FarmConfig, replayModels: Record<string, string>, primary: Map<string, Backend>, backends: Backend[]): Promise<number> {
  const { source } = config;
  if (Object.keys(replayModels).length === 0) return 0;
  for (const [i, path] of config.datasetPaths.entries()) {
    await mustExist(path, `datasets.${i} (${config.datasets[i]}; CASCADE_DATA_DIR=${process.env.CASCADE_DATA_DIR ?? 'unset'})`, source);
  }
  const replay = await createReplayBackend({ datasets: config.datasetPaths, models: replayModels });
  backends.push(replay);
  const recorded = replay.recordedModels();
  for (const [name, recordedAs] of Object.entries(replayModels)) {
    if (!recorded.has(recordedAs)) {
      throw new FarmConfigError(
        `${source}: models.${name}: no recorded responses for "${recordedAs}" in the datasets (recorded models: ${[...recorded].join(', ') || 'none'})`,
      );
    }
    primary.set(name, replay);
  }
  return replay.size();
}

/** The llama backend for every `backend: llama` model, or null when there is none. */
async function loadLlama(config: FarmConfig): Promise<Backend | null> {
  const { source } = config;
  const options: LlamaBackendOptions = { models: [] };
  for (const [name, model] of Object.entries(config.models)) {
    if (model.backend !== 'llama') continue;
    const gguf = config.ggufPaths[name]!;
    await mustExist(gguf, `models.${name}.gguf`, source);
    options.models.push({
      name,
      gguf,
      contextSize: model.context_size ?? contextWindowOf(model),
      ...(model.threads !== undefined ? { threads: model.threads } : {}),
      ...(model.max_tokens !== undefined ? { maxTokens: model.max_tokens } : {}),
    });
  }
  if (options.models.length === 0) return null;
  let mod: LlamaModule;
  try {
    mod = (await import(LLAMA_MODULE)) as LlamaModule;
  } catch (err) {
    throw new FarmConfigError(`${source}: models use backend "llama" but farm/backends/llama.ts could not be loaded (${(err as Error).message})`);
  }
  return mod.createLlamaBackend(options);
}

export async function createBackends(config: FarmConfig): Promise<FarmBackends> {
  const models = Object.entries(config.models);
  const backends: Backend[] = [];
  const primary = new Map<string, Backend>();

  const syntheticSettings: Record<string, SyntheticSettings> = {};
  for (const [name, model] of models) syntheticSettings[name] = model.synthetic ?? DEFAULT_SYNTHETIC;
  const synthetic = createSyntheticBackend(syntheticSettings);
  backends.push(synthetic);

  // The local model loads (native, ~1 s and more on a busy machine) while the datasets are read.
  const llamaLoading = loadLlama(config);
  llamaLoading.catch(() => undefined); // awaited below; a replay error first must not leave it unhandled
  let replayPrompts: number;
  try {
    replayPrompts = await loadReplay(config, replayModelsOf(models), primary, backends);
  } catch (err) {
    await (await llamaLoading.catch(() => null))?.close?.();
    throw err;
  }

  const llama = await llamaLoading;
  if (llama) {
    for (const name of llama.models()) primary.set(name, llama);
    backends.push(llama);
  }

  for (const [name, model] of models) if (model.backend === 'synthetic') primary.set(name, synthetic);

  return {
    primary,
    synthetic,
    replayPrompts,
    async close() {
      await Promise.all(backends.map(async (b) => b.close?.()));
    },
  };
}
