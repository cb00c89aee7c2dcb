/**
 * Replay backend: answers with the recorded response of the requested model for the prompt.
 * Reads any dataset in the shared schema (any number of models, optional fields absent) once at
 * start-up and indexes it by whitespace-normalised prompt and by row id, so a request costs a Map
 * lookup. The stream tokens of each answer are split once, on first use, and shared.
 * Multi-turn rows (e.g. MT-Bench turn 2) are matched on all user messages of the conversation.
 */
import { estimateTokens, normalisePrompt, readDataset, type ModelOutcome } from '../../common/dataset.js';
import { capAnswer, hash32, lastUserMessage, splitPieces, withLogprobs } from '../tokens.js';
import type { Backend, ChatMessage, GenerateRequest, GeneratedAnswer, GeneratedToken } from './types.js';

export interface ReplayBackendOptions {
  /** Absolute paths of JSONL datasets in the shared schema. */
  datasets: string[];
  /** Served model name → the model name in the data (usually the same). */
  models: Record<string, string>;
}

interface Recording {
  rowId: string;
  outcome: ModelOutcome & { response: string };
  /** Stream tokens without logprobs: split on first use, then shared by every request (never mutated). */
  tokens: GeneratedToken[] | null;
  seed: number;
}

export interface ReplayBackend extends Backend {
  /** Recorded model names with at least one response in the loaded data. */
  recordedModels(): Set<string>;
  /** Number of distinct prompts indexed. */
  size(): number;
}

type Recordings = Map<string, Recording>;

/** Key of a conversation: its user messages, normalised, in order. */
const conversationKey = (userPrompts: readonly string[]) => userPrompts.map(normalisePrompt).join('\u0000');

const userPrompts = (messages: readonly ChatMessage[]) => messages.filter((m) => m.role === 'user').map((m) => m.content);

/** A later turn's answer: only the text is recorded, so usage is estimated. */
const turnOutcome = (response: string): Recording['outcome'] => ({
  response,
  correct: null,
  score: null,
  inputTokens: null,
  outputTokens: null,
  costUsd: null,
  logprob: null,
  latencyMs: null,
});

export async function createReplayBackend(opts: ReplayBackendOptions): Promise<ReplayBackend> {
  const byPrompt = new Map<string, Recordings>();
  const byId = new Map<string, Recordings>();
  const byConversation = new Map<string, Recordings>();
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
          rowId: row.id,
          outcome: outcome as Recording['outcome'],
          tokens: null,
          seed: hash32(`${model}\u0000${row.id}`),
        };
        add(byPrompt, promptKey, model, rec);
        add(byId, row.id, model, rec);
      }
      const prompts = [row.prompt];
      for (const turn of row.turns ?? []) {
        prompts.push(turn.prompt);
        for (const [model, response] of Object.entries(turn.responses)) {
          if (response === null) continue;
          const rec: Recording = {
            rowId: row.id,
            outcome: turnOutcome(response),
            tokens: null,
            seed: hash32(`${model}\u0000${row.id}\u0000${turn.turn}`),
          };
          add(byConversation, conversationKey(prompts), model, rec);
          add(byId, `${row.id}\u0000${prompts.length}`, model, rec);
        }
      }
    }
  }

  /** Multi-turn requests match the whole conversation first, then the last user message. */
  const find = (req: GenerateRequest): Recordings | undefined => {
    const users = userPrompts(req.messages);
    if (req.replayId !== undefined) return byId.get(users.length > 1 ? `${req.replayId}\u0000${users.length}` : req.replayId);
    return (users.length > 1 ? byConversation.get(conversationKey(users)) : undefined) ?? byPrompt.get(lastUserMessage(req.messages));
  };

  const answer = (req: GenerateRequest): GeneratedAnswer | null => {
    const recordedAs = opts.models[req.model];
    if (recordedAs === undefined) return null;
    const rec = find(req)?.get(recordedAs);
    if (!rec) return null;
    const { outcome } = rec;
    rec.tokens ??= splitPieces(outcome.response).map((text) => ({ text }));
    const tokens =
      outcome.logprob !== null && req.wantLogprobs
        ? withLogprobs(
            rec.tokens.map((t) => t.text),
            Math.min(0, outcome.logprob),
            rec.seed,
            req.topLogprobs,
          )
        : rec.tokens;
    return capAnswer(
      {
        text: outcome.response,
        tokens,
        inputTokens: outcome.inputTokens ?? req.messages.reduce((n, m) => n + estimateTokens(m.content), 0),
        outputTokens: outcome.outputTokens ?? estimateTokens(outcome.response),
        finishReason: 'stop',
        simulated: false,
        sourceId: rec.rowId,
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
