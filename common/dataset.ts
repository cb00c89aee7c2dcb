/**
 * Reader for the shared recorded-outcome schema (see ../shared/data/README.md).
 * One JSON object per line; any number of models; every optional field may be absent or null.
 * Farm, evaluators and benchmarks all read datasets through this module.
 */
import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { createInterface } from 'node:readline';

export interface ModelOutcome {
  response: string | null;
  /** Binary label, when the dataset has one. */
  correct: boolean | null;
  /** Graded label (e.g. judge score 1-10), when the dataset has one. */
  score: number | null;
  inputTokens: number | null;
  outputTokens: number | null;
  costUsd: number | null;
  logprob: number | null;
  latencyMs: number | null;
}

export interface DatasetRow {
  id: string;
  dataset: string;
  split: string | null;
  subset: string | null;
  prompt: string;
  reference: string | null;
  models: Record<string, ModelOutcome>;
  /**
   * Later turns of a multi-turn prompt, when the dataset records them (e.g. MT-Bench's
   * `prompt_turn2` with each model's `response_turn2`); absent for single-turn rows.
   */
  turns?: DatasetTurn[];
}

export interface DatasetTurn {
  /** 2 for the second user message, and so on. */
  turn: number;
  prompt: string;
  /** Model name → its answer to this turn (null when not recorded). */
  responses: Record<string, string | null>;
}

export interface ModelPrice {
  name: string;
  inputUsdPer1M: number | null;
  outputUsdPer1M: number | null;
}

export class DatasetError extends Error {
  override name = 'DatasetError';
}

const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);
const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);

function parseOutcome(raw: unknown): ModelOutcome {
  const o = (raw && typeof raw === 'object' ? raw : {}) as Record<string, unknown>;
  return {
    response: str(o.response),
    correct: typeof o.correct === 'boolean' ? o.correct : null,
    // The row's prompt and response are the first turn; where a multi-turn dataset also scores
    // each turn (MT-Bench: `score` is the mean of both turns), the first turn's score is the one
    // that judges this response.
    score: num(o.score_turn1) ?? num(o.score),
    inputTokens: num(o.input_tokens),
    outputTokens: num(o.output_tokens),
    costUsd: num(o.cost_usd),
    logprob: num(o.logprob),
    latencyMs: num(o.latency_ms),
  };
}

/** Parses one JSONL line; `where` names the file and line for error messages. */
export function parseDatasetLine(line: string, where: string): DatasetRow {
  let raw: unknown;
  try {
    raw = JSON.parse(line);
  } catch (err) {
    throw new DatasetError(`${where}: not valid JSON (${(err as Error).message})`);
  }
  if (!raw || typeof raw !== 'object') throw new DatasetError(`${where}: expected a JSON object`);
  const r = raw as Record<string, unknown>;
  const id = str(r.id) ?? (typeof r.id === 'number' ? String(r.id) : null);
  if (!id) throw new DatasetError(`${where}: field "id" is missing`);
  const prompt = str(r.prompt);
  if (prompt === null) throw new DatasetError(`${where}: field "prompt" is missing (id ${id})`);
  if (!r.models || typeof r.models !== 'object') throw new DatasetError(`${where}: field "models" is missing (id ${id})`);
  const models: Record<string, ModelOutcome> = {};
  for (const [name, outcome] of Object.entries(r.models as Record<string, unknown>)) models[name] = parseOutcome(outcome);
  const turns = parseTurns(r);
  return {
    id,
    dataset: str(r.dataset) ?? 'unknown',
    split: str(r.split),
    subset: str(r.subset),
    prompt,
    reference: r.reference === null || r.reference === undefined ? null : String(r.reference),
    models,
    ...(turns.length ? { turns } : {}),
  };
}

/** Reads `prompt_turn<N>` / `models.<m>.response_turn<N>` pairs (N = 2, 3, … while present). */
function parseTurns(r: Record<string, unknown>): DatasetTurn[] {
  const turns: DatasetTurn[] = [];
  for (let turn = 2; typeof r[`prompt_turn${turn}`] === 'string'; turn++) {
    const responses: Record<string, string | null> = {};
    for (const [name, outcome] of Object.entries(r.models as Record<string, unknown>)) {
      const o = outcome && typeof outcome === 'object' ? (outcome as Record<string, unknown>) : {};
      responses[name] = str(o[`response_turn${turn}`]);
    }
    turns.push({ turn, prompt: r[`prompt_turn${turn}`] as string, responses });
  }
  return turns;
}

/** Streams rows of a JSONL dataset file. Blank lines are skipped. */
export async function* readDataset(path: string): AsyncGenerator<DatasetRow> {
  const lines = createInterface({ input: createReadStream(path, { encoding: 'utf8' }), crlfDelay: Infinity });
  let n = 0;
  for await (const line of lines) {
    n++;
    if (line.trim() === '') continue;
    yield parseDatasetLine(line, `${path}:${n}`);
  }
}

export async function loadDataset(path: string): Promise<DatasetRow[]> {
  const rows: DatasetRow[] = [];
  for await (const row of readDataset(path)) rows.push(row);
  return rows;
}

/**
 * Reads `models.json` beside a dataset, if present. Accepts either a list of
 * `{name, input_usd_per_1m, output_usd_per_1m}`-like objects or a map name → price object;
 * unknown shapes yield an empty list (prices then come from recorded `cost_usd`).
 */
export async function loadModelPrices(datasetPath: string): Promise<ModelPrice[]> {
  const file = datasetPath.replace(/[^/]+$/, 'models.json');
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(file, 'utf8'));
  } catch {
    return [];
  }
  const entries: [string, Record<string, unknown>][] = Array.isArray(raw)
    ? raw.filter((m) => m && typeof m === 'object' && typeof m.name === 'string').map((m) => [m.name as string, m])
    : raw && typeof raw === 'object'
      ? Object.entries((raw as Record<string, unknown>).models ?? raw).filter((e): e is [string, Record<string, unknown>] => !!e[1] && typeof e[1] === 'object')
      : [];
  // Key names vary between datasets; compare case-insensitively and fall back to a blended price.
  const pick = (o: Record<string, unknown>, keys: string[]) => {
    const lower = new Map(Object.entries(o).map(([k, v]) => [k.toLowerCase(), v]));
    for (const k of [...keys, 'usd_per_1m_tokens_blended', 'blended_usd_per_1m']) {
      const v = num(lower.get(k));
      if (v !== null) return v;
    }
    return null;
  };
  return entries.map(([name, o]) => ({
    name,
    inputUsdPer1M: pick(o, ['input_usd_per_1m', 'input_per_1m', 'usd_per_1m_input', 'input_price_per_1m', 'input']),
    outputUsdPer1M: pick(o, ['output_usd_per_1m', 'output_per_1m', 'usd_per_1m_output', 'output_price_per_1m', 'output']),
  }));
}

/** Whitespace-normalised text used to match prompts across the farm, evaluators and benchmarks. */
export function normalisePrompt(text: string): string {
  return text.replace(/\s+/g, ' ').trim();
}

/**
 * Deterministic split for datasets without one: `sha1(id) mod 10 < 3` → train (the rule used by
 * the shared data), else test. Rows that carry a split keep it.
 */
export function splitOf(row: DatasetRow): string {
  if (row.split) return row.split;
  const h = createHash('sha1').update(row.id).digest();
  return h.readUInt32BE(0) % 10 < 3 ? 'train' : 'test';
}

/** Rough token estimate (characters ÷ 4), the same rule the shared data used where counts are estimated. */
export function estimateTokens(text: string): number {
  return Math.max(1, Math.ceil(text.length / 4));
}
