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
      // Mixtral on cpu takes ~5 s an answer: cpu's one slot stays busy well past the others' wait.
      Object.assign(farm.pools.cpu!.models[MIXTRAL]!, { ttft_ms: 50, tokens_per_s: 10 });
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
      // Three at once: one holds cpu's only slot, two wait for it until schedule-to-start gives up.
      const done: Awaited<ReturnType<typeof ask>>[] = [];
      const all = Promise.all([ask(), ask(), ask()].map((p) => p.then((r) => (done.push(r), r))));
      while (done.length < 2) await Promise.race([all, new Promise((resolve) => setTimeout(resolve, 20))]);
      for (const w of done.slice(0, 2)) {
        assert.deepEqual(w.trace.attempts.map((a: any) => [a.pool, a.error]).slice(0, 1), [['cpu', 'no_capacity']], 'they queued on cpu first');
        assert.deepEqual(w.pools, ['gpu-a'], 'and were answered on gpu-a');
      }
      // cpu is still busy with the third: the router now knows its calls wait.
      const next = await ask();
      assert.equal(done.length, 2, 'cpu was still busy when the next request was answered');
      assert.deepEqual(next.pools, ['gpu-a'], 'straight to gpu-a, no call queued on cpu');
      assert.deepEqual(
        next.trace.attempts.map((a: any) => [a.pool, a.error]),
        [['gpu-a', null]],
      );
      const holder = (await all).find((r) => !done.slice(0, 2).includes(r))!;
      assert.deepEqual(holder.pools, ['cpu'], 'the one that held the slot was answered there');
    });
  });
}
