/** Shared test helpers: start a farm on random ports, call it over real HTTP, read its attempt log. */
import { fileURLToPath } from 'node:url';
import OpenAI from 'openai';
import { pino } from 'pino';
import { readDataset, type DatasetRow } from '../../common/dataset.js';
import { loadFarmConfig, startFarm, TEST_FARM_CONFIG, type Attempt, type FarmConfig, type RunningFarm } from '../../farm/index.js';

export { TEST_FARM_CONFIG as TEST_CONFIG, DEFAULT_FARM_CONFIG as DEFAULT_CONFIG } from '../../farm/index.js';
export const MIXTRAL = 'mistralai/Mixtral-8x7B-Instruct-v0.1';
export const GPT4 = 'gpt-4-1106-preview';

export const silentLogger = pino({ level: 'silent' });

export interface TestFarm {
  farm: RunningFarm;
  baseUrl(pool: string): string;
  /** Origin of a pool (no /v1), for control routes. */
  origin(pool: string): string;
  client(pool: string, opts?: { maxRetries?: number; timeout?: number }): OpenAI;
  log(query?: Record<string, string>): Promise<Attempt[]>;
  reset(): Promise<void>;
  close(): Promise<void>;
}

export async function startTestFarm(config?: FarmConfig): Promise<TestFarm> {
  const farm = await startFarm(config ?? (await loadFarmConfig(TEST_FARM_CONFIG)), { portOverride: 0, logger: silentLogger });
  const baseUrl = (pool: string) => {
    const p = farm.pools.find((x) => x.name === pool);
    if (!p) throw new Error(`no pool ${pool}`);
    return p.baseUrl;
  };
  const origin = (pool: string) => baseUrl(pool).replace(/\/v1$/, '');
  const first = farm.pools[0]!.name;
  return {
    farm,
    baseUrl,
    origin,
    client: (pool, opts = {}) => new OpenAI({ baseURL: baseUrl(pool), apiKey: 'farm', maxRetries: opts.maxRetries ?? 0, timeout: opts.timeout ?? 10_000 }),
    async log(query = {}) {
      const res = await fetch(`${origin(first)}/farm/log?${new URLSearchParams(query)}`);
      return ((await res.json()) as { attempts: Attempt[] }).attempts;
    },
    async reset() {
      await fetch(`${origin(first)}/farm/reset`, { method: 'POST' });
    },
    close: () => farm.close(),
  };
}

export async function firstRows(path: string, n: number): Promise<DatasetRow[]> {
  const rows: DatasetRow[] = [];
  for await (const row of readDataset(path)) {
    rows.push(row);
    if (rows.length >= n) break;
  }
  return rows;
}

export const GSM8K = fileURLToPath(new URL('../../../shared/data/routellm/gsm8k.jsonl', import.meta.url));
export const MT_BENCH = fileURLToPath(new URL('../../../shared/data/routellm/mt_bench.jsonl', import.meta.url));

/** POSTs a chat completion with raw fetch, so tests see the wire exactly. */
export function postChat(baseUrl: string, body: Record<string, unknown>, headers: Record<string, string> = {}, signal?: AbortSignal) {
  return fetch(`${baseUrl}/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
    ...(signal ? { signal } : {}),
  });
}

export interface SseRead {
  /** Raw `data:` payloads in order (including "[DONE]" when sent). */
  events: string[];
  /** Arrival time (ms since the read started) of each network chunk. */
  arrivals: number[];
  /** Set when the body ended with a network error (cut, reset). */
  error: Error | null;
  /** When the body ended (ms since the read started). */
  endedAt: number;
}

/** Reads an SSE body to its end, recording arrival times and a terminal network error if any. */
export async function readSse(res: Response): Promise<SseRead> {
  const started = Date.now();
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let text = '';
  const arrivals: number[] = [];
  let error: Error | null = null;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      arrivals.push(Date.now() - started);
      text += decoder.decode(value, { stream: true });
    }
  } catch (err) {
    error = err as Error;
  }
  const events = text
    .split('\n\n')
    .filter((block) => block.startsWith('data: '))
    .map((block) => block.slice('data: '.length));
  return { events, arrivals, error, endedAt: Date.now() - started };
}
