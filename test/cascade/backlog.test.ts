/**
 * Pool backlog enters routing, on the real stack: when calls on one pool wait for a worker slot,
 * the router sends the next request to an equivalent deployment on a pool that is free, instead
 * of queueing it behind them. Both dispatch modes (a pool worker's task queue; the router's own
 * pool slots). Counts from the farm's attempt log, no timing thresholds.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadFarmConfig } from '../../farm/index.js';
import { REPO_ROOT } from '../../config/load.js';
import { MIXTRAL, startStack, type Stack } from '../helpers/stack.js';

const prompt = JSON.parse(readFileSync(new URL('../../../shared/data/routellm/gsm8k.jsonl', import.meta.url), 'utf8').split('\n')[0]!).prompt as string;

for (const dispatch of ['task-queue', 'local'] as const) {
  describe(`pool backlog in routing (dispatch: ${dispatch})`, () => {
    let stack: Stack;
    before(async () => {
      const farm = await loadFarmConfig(join(REPO_ROOT, 'config', 'farm.test.yaml'));
      // Mixtral on cpu takes ~3 s an answer: long enough to keep cpu's one slot busy.
      Object.assign(farm.pools.cpu!.models[MIXTRAL]!, { ttft_ms: 50, tokens_per_s: 20 });
      stack = await startStack({
        farmConfig: farm,
        configure: (raw) => {
          // Only the backlog may move cpu behind gpu-a here: no breaker, no latency measured yet.
          raw.breaker.failure_threshold = 1000;
          raw.pools.cpu.concurrency = 1;
          if (dispatch === 'local') for (const pool of Object.values(raw.pools) as { dispatch?: string }[]) pool.dispatch = 'local';
        },
      });
    });
    after(async () => {
      await stack?.close();
    });

    const ask = async () => {
      const res = (await stack.openai.chat.completions.create({ model: 'mixtral', messages: [{ role: 'user', content: prompt }] })) as any;
      const calls = (await stack.farmLog()).filter((a) => a.request_id?.startsWith(`${res.cascade.workflow_id}/`));
      return { trace: res.cascade, pools: calls.map((a) => a.pool) };
    };

    it('calls that waited on a busy pool move the next request to an equivalent deployment on a free one', async () => {
      // One request holds cpu's only slot; two more wait for it until schedule-to-start gives up.
      const holder = ask();
      await new Promise((resolve) => setTimeout(resolve, 300));
      const waited = await Promise.all([ask(), ask()]);
      for (const w of waited) {
        assert.deepEqual(w.trace.attempts.map((a: any) => [a.pool, a.error]).slice(0, 1), [['cpu', 'no_capacity']], 'they queued on cpu first');
        assert.deepEqual(w.pools, ['gpu-a'], 'and were answered on gpu-a');
      }
      // cpu is still busy with the first request: the router now knows its calls wait.
      const next = await ask();
      assert.deepEqual(next.pools, ['gpu-a'], 'straight to gpu-a, no call queued on cpu');
      assert.deepEqual(
        next.trace.attempts.map((a: any) => [a.pool, a.error]),
        [['gpu-a', null]],
      );
      assert.deepEqual((await holder).pools, ['cpu']);
    });
  });
}
