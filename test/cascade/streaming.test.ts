/**
 * Live answers, end to end: the API streams an answer while the farm is still generating it
 * (the model-call activity → side channel → API), resumes a dropped stream without a new model
 * call, never ends a cut stream with [DONE], stops a lost cheap answer early, streams opt-in drafts,
 * and hedges a step with its successor (the loser is cancelled upstream). Assertions are orderings
 * and counts from the farm's attempt log (same host, same clock), never wall-clock thresholds.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadFarmConfig } from '../../farm/index.js';
import { REPO_ROOT } from '../../config/load.js';
import { attemptsOf as attemptsOfRequest, finalChunk, firstContentAt, streamChat as streamRequest } from '../helpers/stream-client.js';
import type { Attempt } from '../../farm/index.js';
import { GPT4, MIXTRAL, startStack, type Stack } from '../helpers/stack.js';
import { apiMetricsUrl, scrape, sum } from '../helpers/metrics.js';

const rows = readFileSync(new URL('../../../shared/data/routellm/gsm8k.jsonl', import.meta.url), 'utf8')
  .split('\n')
  .slice(0, 3)
  .map((l) => JSON.parse(l));
const prompt = rows[0].prompt as string;
const gpt4Answer = rows[0].models[GPT4].response as string;
const mixtralAnswer = rows[0].models[MIXTRAL].response as string;

for (const dispatch of ['task-queue', 'local'] as const) {
  let stack: Stack;
  before(async () => {
    const farm = await loadFarmConfig(join(REPO_ROOT, 'config', 'farm.test.yaml'));
    // Paced answers (~10 ms a token), so a stream lasts long enough to be seen while it runs.
    for (const pool of Object.values(farm.pools)) for (const timing of Object.values(pool.models)) Object.assign(timing, { ttft_ms: 50, tokens_per_s: 100 });
    Object.assign(farm.pools['gpu-a']!.models['sim-small']!, { ttft_ms: 50, tokens_per_s: 5 }); // the slow hedged step
    Object.assign(farm.pools.api!.models['sim-large']!, { ttft_ms: 50, tokens_per_s: 20 }); // a hedge still streaming when the other step loses
    stack = await startStack({
      farmConfig: farm,
      configure: (raw) => {
        raw.breaker.failure_threshold = 1000;
        if (dispatch === 'local') for (const pool of Object.values(raw.pools) as { dispatch?: string }[]) pool.dispatch = 'local';
        for (const m of Object.values(raw.models) as { timeouts: { stream_idle_ms: number } }[]) m.timeouts.stream_idle_ms = 2000;
        raw.policies['rejects-early'] = {
          steps: [{ model: MIXTRAL, evaluator: { type: 'validators' }, threshold: 0.5, early_abort: { max_tokens: 8 } }, { model: GPT4 }],
          deadline_ms: 20000,
          max_cost_usd: 0.5,
        };
        // Expected latencies that cannot fit back to back in the deadline: the second step is hedged.
        raw.models['sim-small'].latency_ms = { p50: 5000, p99: 9000 };
        raw.models[GPT4].latency_ms = { p50: 5000, p99: 9000 };
        if (dispatch !== 'local')
          raw.policies['tail-hedged'] = {
            steps: [{ model: 'sim-small', evaluator: { type: 'validators' }, threshold: 0.5, hedge: { after_ms: 300 } }, { model: GPT4 }],
            deadline_ms: 20000,
            max_cost_usd: 0.5,
          };
        if (dispatch !== 'local')
          raw.policies['hedge-not-needed'] = {
            steps: [{ model: MIXTRAL, evaluator: { type: 'validators' }, threshold: 0.5, hedge: { after_ms: 15000 } }, { model: GPT4 }],
            deadline_ms: 20000,
            max_cost_usd: 0.5,
          };
        // The cheap step is stopped after 8 tokens and loses while its hedge (slow sim-large) still streams.
        raw.models['sim-large'].latency_ms = { p50: 5000, p99: 9000 };
        raw.models[MIXTRAL].latency_ms = { p50: 5000, p99: 9000 };
        raw.policies['hedge-outlives'] = {
          steps: [
            { model: MIXTRAL, evaluator: { type: 'validators' }, threshold: 0.5, early_abort: { max_tokens: 8 }, hedge: { on_deadline: true } },
            { model: 'sim-large' },
          ],
          deadline_ms: 9000,
          max_cost_usd: 0.5,
        };
        raw.policies.hedged = {
          steps: [{ model: 'sim-small', evaluator: { type: 'validators' }, threshold: 0.5, hedge: { on_deadline: true } }, { model: GPT4 }],
          deadline_ms: 9000,
          max_cost_usd: 0.5,
        };
      },
    });
  });
  after(async () => {
    await stack?.close();
  });

  const streamChat = (body: Record<string, unknown>, headers: Record<string, string> = {}, stopAfterChars = Infinity) =>
    streamRequest(stack.apiUrl, { messages: [{ role: 'user', content: prompt }], ...body }, headers, stopAfterChars);
  const attemptsOf = (workflowId: string) => attemptsOfRequest(() => stack.farmLog(), workflowId);

  describe(`live answers (dispatch: ${dispatch})`, () => {
    it('a direct model call streams: the first content chunk arrives before the upstream stream ended', async () => {
      const r = await streamChat({ model: 'gpt-4' });
      assert.equal(r.status, 200);
      assert.equal(r.text, gpt4Answer);
      assert.ok(r.done, 'ends with [DONE]');
      const [attempt] = await attemptsOf(r.workflowId);
      assert.ok(attempt?.end_ms, 'the farm logged the end of its stream');
      assert.ok(firstContentAt(r) < attempt.end_ms, `first chunk at ${firstContentAt(r)}, upstream ended at ${attempt.end_ms}`);
      assert.ok(r.events.filter((e) => e.id !== null).length > 10, 'answer chunks carry SSE ids');
    });

    it('the last step of an escalated cascade streams live once the cheap step was rejected', async () => {
      const r = await streamChat({ model: 'cascade:rejects-early' });
      assert.equal(r.text, gpt4Answer);
      assert.ok(r.done);
      const attempts = await attemptsOf(r.workflowId);
      const strong = attempts.find((a) => a.model === GPT4)!;
      assert.ok(firstContentAt(r) < strong.end_ms!, 'the strong answer streamed while it was generated');
    });

    it('early abort: the lost cheap answer is stopped before its end and the trace shows what was saved', async () => {
      const metricsBefore = await scrape(apiMetricsUrl(stack.apiUrl));
      const r = await streamChat({ model: 'cascade:rejects-early' });
      const attempts = await attemptsOf(r.workflowId);
      const cheap = attempts.find((a) => a.model === MIXTRAL)!;
      assert.equal(cheap.outcome, 'client-closed', 'the cheap stream was abandoned, not read to its end');
      const strong = attempts.find((a) => a.model === GPT4)!;
      assert.ok(cheap.end_ms! <= strong.t_ms, 'escalated only after the cheap call was stopped');
      const trace = finalChunk(r).cascade;
      const first = trace.attempts[0];
      assert.equal(first.accepted, false);
      assert.ok(first.stopped_early, 'the trace records the early stop');
      assert.ok(first.stopped_early.tokens < mixtralAnswer.length / 4, 'fewer tokens than the whole answer');
      assert.ok(first.stopped_early.saved_tokens_est > 0);
      assert.ok(first.cost_usd > 0, 'the tokens generated before the stop are billed');
      const where = { policy: 'rejects-early', step: '1', model: MIXTRAL };
      const metrics = await scrape(apiMetricsUrl(stack.apiUrl));
      assert.equal(
        sum(metrics, 'cascade_early_aborts_total', where) - sum(metricsBefore, 'cascade_early_aborts_total', where),
        1,
        'one early abort in /metrics',
      );
    });

    it('a dropped stream resumes with the same Idempotency-Key and Last-Event-ID: no new model call, no repeated text', async () => {
      const key = `resume-${Date.now()}`;
      const first = await streamChat({ model: 'gpt-4' }, { 'idempotency-key': key }, 40);
      assert.ok(first.text.length >= 40 && first.text.length < gpt4Answer.length, 'dropped mid-answer');
      const lastId = [...first.events].reverse().find((e) => e.id !== null)!.id!;
      assert.equal(Number(lastId), first.text.length, 'the last id counts the characters received');
      const rest = await streamChat({ model: 'gpt-4' }, { 'idempotency-key': key, 'last-event-id': lastId });
      assert.equal(rest.status, 200);
      assert.equal(first.text + rest.text, gpt4Answer);
      assert.ok(rest.done);
      assert.equal((await attemptsOf(first.workflowId)).length, 1, 'one model call in all');
    });

    it('a stream cut after N tokens on the only deployment ends with an in-band error, never [DONE]', async () => {
      const r = await streamChat({ model: 'gpt-4' }, { 'x-farm-fault': 'stream-cut;pool=api' });
      assert.equal(r.status, 200);
      assert.ok(r.text.length > 0 && gpt4Answer.startsWith(r.text), 'some text was streamed, and it was right');
      assert.ok(r.text.length < gpt4Answer.length, 'the answer is incomplete');
      assert.equal(r.done, false, 'no [DONE] after a broken answer');
      assert.equal(finalChunk(r), undefined, 'no finish_reason');
      assert.ok(
        r.events.some((e) => e.data.error),
        'an in-band error event',
      );
    });

    it('a cut stream fails over to a deployment that replays the same answer: it continues without repeating text', async () => {
      const r = await streamChat({ model: 'mixtral' }, { 'x-farm-fault': 'stream-cut;pool=cpu' });
      assert.equal(r.text, mixtralAnswer, 'exactly the answer, nothing repeated');
      assert.ok(r.done);
      const attempts = await attemptsOf(r.workflowId);
      assert.deepEqual(
        attempts.map((a) => [a.pool, a.outcome]),
        [
          ['cpu', 'stream-cut'],
          ['gpu-a', 'ok'],
        ],
      );
    });

    it('opt-in drafts stream marked as drafts; a rejected draft is announced before the escalated answer', async () => {
      const r = await streamChat({ model: 'cascade:rejects-early', cascade: { stream_drafts: true } });
      const drafts = r.events.filter((e) => e.data.cascade?.draft);
      assert.ok(drafts.length > 0, 'draft chunks');
      assert.ok(drafts.every((e) => e.data.cascade.step === 1));
      const rejected = r.events.findIndex((e) => e.data.cascade?.draft_rejected);
      const firstAnswer = r.events.findIndex((e) => e.id !== null);
      assert.ok(rejected > 0 && rejected < firstAnswer, 'the rejection comes before the answer');
      assert.equal(r.text, gpt4Answer, 'the answer itself, drafts aside');
    });
  });

  describe(`hedged escalation (dispatch: ${dispatch})`, () => {
    it('the next step starts alongside a slow one; the first acceptable answer wins and the loser is cancelled upstream', async () => {
      const metricsBefore = await scrape(apiMetricsUrl(stack.apiUrl));
      const r = await streamChat({ model: 'cascade:hedged' });
      assert.equal(r.text, gpt4Answer);
      // The cancellation reaches the loser's activity with its next heartbeat (about a second).
      let attempts: Attempt[] = [];
      for (let i = 0; i < 100; i++) {
        attempts = await attemptsOf(r.workflowId);
        if (attempts.find((a) => a.model === 'sim-small')?.end_ms) break;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      const slow = attempts.find((a) => a.model === 'sim-small')!;
      const strong = attempts.find((a) => a.model === GPT4)!;
      assert.ok(strong.t_ms < slow.end_ms!, 'both calls were running at once');
      assert.equal(slow.outcome, 'client-closed', 'the loser was cancelled, its upstream request closed');
      const trace = finalChunk(r).cascade;
      const loser = trace.attempts.find((a: any) => a.error === 'cancelled');
      assert.ok(loser && loser.cost_usd > 0, 'the loser is in the trace with its cost');
      const winner = trace.attempts.find((a: any) => a.accepted);
      assert.ok(Math.abs(trace.cost_usd - (loser.cost_usd + winner.cost_usd)) < 1e-12, 'both costs are in the total');
      const metrics = await scrape(apiMetricsUrl(stack.apiUrl));
      const delta = (name: string, where: Record<string, string>) => sum(metrics, name, where) - sum(metricsBefore, name, where);
      assert.equal(delta('cascade_hedges_total', { policy: 'hedged', step: '2', result: 'won' }), 1, 'the hedge won, in /metrics');
      assert.ok(Math.abs(delta('cascade_cost_usd_total', { policy: 'hedged', model: 'sim-small' }) - loser.cost_usd) < 1e-12, "the loser's cost is counted");
    });

    it('a hedge that outlives the step it hedged streams live: held until the other step lost, then at once and the rest as generated', async () => {
      const r = await streamChat({ model: 'cascade:hedge-outlives' });
      const direct = await stack.openai.chat.completions.create({ model: 'sim-large', messages: [{ role: 'user', content: prompt }] });
      assert.equal(r.text, direct.choices[0]!.message.content, 'the answer of the hedge, exactly once');
      assert.ok(r.done);
      const attempts = await attemptsOf(r.workflowId);
      const cheap = attempts.find((a) => a.model === MIXTRAL)!;
      const hedge = attempts.find((a) => a.model === 'sim-large')!;
      assert.ok(hedge.t_ms < cheap.end_ms!, 'both steps ran at once');
      assert.ok(cheap.end_ms! < firstContentAt(r), 'nothing of the hedge reached the client before the other step lost');
      assert.ok(firstContentAt(r) < hedge.end_ms!, 'the winner streamed while its upstream was still generating');
      const trace = finalChunk(r).cascade;
      assert.deepEqual(
        trace.hedges.map((h: any) => h.step),
        [2],
      );
      assert.equal(trace.final_step, 2);
    });

    const localSkip = dispatch === 'local' && 'hedge.after_ms needs task-queue dispatch (the config refuses it with local)';
    it('a tail-latency hedge starts the next step only once the first has run past after_ms', { skip: localSkip }, async () => {
      const r = await streamChat({ model: 'cascade:tail-hedged' });
      assert.equal(r.text, gpt4Answer);
      const attempts = await attemptsOf(r.workflowId);
      const slow = attempts.find((a) => a.model === 'sim-small')!;
      const strong = attempts.find((a) => a.model === GPT4)!;
      assert.ok(slow.t_ms < strong.t_ms, 'the hedge started after the slow step');
      const trace = finalChunk(r).cascade;
      assert.deepEqual(
        trace.hedges.map((h: any) => h.step),
        [2],
      );
      assert.match(trace.hedges[0].reason, /not accepted after 300 ms/);
    });

    it('no hedge when the first step is accepted before after_ms: the next step is never called', { skip: localSkip }, async () => {
      const r = await streamChat({ model: 'cascade:hedge-not-needed' });
      assert.equal(r.text, mixtralAnswer);
      const attempts = await attemptsOf(r.workflowId);
      assert.deepEqual(
        attempts.map((a) => a.model),
        [MIXTRAL],
      );
      assert.equal(finalChunk(r).cascade.hedges, undefined);
    });
  });
}
