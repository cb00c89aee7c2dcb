/**
 * Replay backend: answers with the recorded response of the requested model for the prompt.
 * Reads any dataset in the shared schema (any number of models, optional fields absent) once at
 * start-up and indexes it by whitespace-normalised prompt and by row id, so a request costs a Map
 * lookup. The stream pieces of each answer are computed once and cached.
 */
import { estimateTokens, normalisePrompt, readDataset, type ModelOutcome } from '../../common/dataset.js';
import { capAnswer, hash32, lastUserMessage, splitPieces, withLogprobs } from '../tokens.js';
import type { Backend, GenerateRequest, GeneratedAnswer } from './types.js';

export interface ReplayBackendOptions {
  /** Absolute paths of JSONL datasets in the shared schema. */
  datasets: string[];
  /** Served model name → the model name in the data (usually the same). */
  models: Record<string, string>;
}

interface Recording {
  outcome: ModelOutcome & { response: string };
  pieces: string[];
  seed: number;
}

export interface ReplayBackend extends Backend {
  /** Recorded model names with at least one response in the loaded data. */
  recordedModels(): Set<string>;
  /** Number of distinct prompts indexed. */
  size(): number;
}

type Recordings = Map<string, Recording>;

export async function createReplayBackend(opts: ReplayBackendOptions): Promise<ReplayBackend> {
  const byPrompt = new Map<string, Recordings>();
  const byId = new Map<string, Recordings>();
  const recorded = new Set<string>();

  // The first recorded response per (prompt, model) wins when datasets overlap.
  const add = (index: Map<string, Recordings>, key: string, model: string, rec: Recording) => {
    let recs = index.get(key);
    if (!recs) index.set(key, (recs = new Map<string, Recording>()));
    if (!recs.has(model)) recs.set(model, rec);
  };

  for (const path of opts.datasets) {
    for await (const row of readDataset(path)) {
      const promptKey = normalisePrompt(row.prompt);
      for (const [model, outcome] of Object.entries(row.models)) {
        if (outcome.response === null) continue;
        recorded.add(model);
        const rec: Recording = {
          outcome: outcome as Recording['outcome'],
          pieces: [],
          seed: hash32(`${model}\u0000${row.id}`),
        };
        add(byPrompt, promptKey, model, rec);
        add(byId, row.id, model, rec);
      }
    }
  }

  const answer = (req: GenerateRequest): GeneratedAnswer | null => {
    const recordedAs = opts.models[req.model];
    if (recordedAs === undefined) return null;
    const recs = req.replayId !== undefined ? byId.get(req.replayId) : byPrompt.get(lastUserMessage(req.messages));
    const rec = recs?.get(recordedAs);
    if (!rec) return null;
    const { outcome } = rec;
    if (rec.pieces.length === 0) rec.pieces = splitPieces(outcome.response);
    const tokens =
      outcome.logprob !== null && req.wantLogprobs
        ? withLogprobs(rec.pieces, Math.min(0, outcome.logprob), rec.seed, req.topLogprobs)
        : rec.pieces.map((text) => ({ text }));
    return capAnswer(
      {
        text: outcome.response,
        tokens,
        inputTokens: outcome.inputTokens ?? req.messages.reduce((n, m) => n + estimateTokens(m.content), 0),
        outputTokens: outcome.outputTokens ?? estimateTokens(outcome.response),
        finishReason: 'stop',
        simulated: false,
        ...(outcome.latencyMs !== null ? { recordedLatencyMs: outcome.latencyMs } : {}),
      },
      req.maxTokens,
    );
  };

  const served = Object.keys(opts.models);
  return {
    kind: 'replay',
    models: () => served,
    recordedModels: () => recorded,
    size: () => byPrompt.size,
    generate: (req) => Promise.resolve(answer(req)),
  };
}
