/**
 * Assistant-prefix continuation, end to end on the real stack: a live answer whose stream is cut
 * after text was sent continues on a deployment that supports continuation, from that text — the
 * client gets the whole answer once, then [DONE], and the durable result is what was streamed.
 * A deployment without support regenerates, and a different text ends the stream with the in-band
 * error (never a spliced answer presented as complete). Both dispatch modes; assertions are the
 * farm's attempt log and the texts, never wall-clock times.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadFarmConfig } from '../../farm/index.js';
import { SIMULATED_CONTINUATION } from '../../farm/continuation.js';
import { REPO_ROOT } from '../../config/load.js';
import { costOfUsage } from '../../workflows/policy.js';
import { GPT4, MIXTRAL, startStack, type Stack } from '../helpers/stack.js';
import { attemptsOf as attemptsOfRequest, finalChunk, streamChat as streamRequest } from '../helpers/stream-client.js';

const row = JSON.parse(readFileSync(new URL('../../../shared/data/routellm/gsm8k.jsonl', import.meta.url), 'utf8').split('\n')[0]!);
const prompt = row.prompt as string;
const mixtralAnswer = row.models[MIXTRAL].response as string;
const gpt4Answer = row.models[GPT4].response as string;
const CUT = { 'x-farm-fault': 'stream-cut;pool=cpu' };

for (const dispatch of ['task-queue', 'local'] as const) {
  describe(`assistant-prefix continuation (dispatch: ${dispatch})`, () => {
    let stack: Stack;
    before(async () => {
      const farm = await loadFarmConfig(join(REPO_ROOT, 'config', 'farm.test.yaml'));
      // Paced answers (~10 ms a token): the text before the cut is streamed live, not all at once.
      for (const pool of Object.values(farm.pools)) for (const timing of Object.values(pool.models)) Object.assign(timing, { ttft_ms: 50, tokens_per_s: 100 });
      stack = await startStack({
        farmConfig: farm,
        configure: (raw, farmUrl) => {
          raw.breaker.failure_threshold = 1000;
          if (dispatch === 'local') for (const pool of Object.values(raw.pools) as { dispatch?: string }[]) pool.dispatch = 'local';
          const on = (pool: string, upstream: string, continuation?: string) => ({
            pool,
            base_url: farmUrl(pool),
            upstream_model: upstream,
            ...(continuation && { continuation }),
          });
          const mixtralLike = (deployments: object[], fallbacks: object[] = []) => ({ ...raw.models[MIXTRAL], aliases: [], deployments, fallbacks });
          // The same model on a vLLM-style server: its recording continues the prefix.
          raw.models['mixtral-vllm'] = mixtralLike([on('cpu', MIXTRAL), on('gpu-a', MIXTRAL, 'vllm')]);
          // A fallback serving another model, DeepSeek/Mistral-style: it continues text it did not write.
          raw.models['mixtral-prefix-fallback'] = mixtralLike([on('cpu', MIXTRAL)], [on('api', GPT4, 'prefix')]);
          // The same fallback without continuation: it regenerates its own, different answer.
          raw.models['mixtral-plain-fallback'] = mixtralLike([on('cpu', MIXTRAL)], [on('api', GPT4)]);
          // Both kinds after the cut, the plain one first in config: the continuing one is asked first.
          raw.models['mixtral-either'] = mixtralLike([on('cpu', MIXTRAL), on('api', GPT4)], [on('gpu-a', MIXTRAL, 'vllm')]);
        },
      });
    });
    after(async () => {
      await stack?.close();
    });

    const streamChat = (model: string, headers: Record<string, string> = {}) =>
      streamRequest(stack.apiUrl, { model, messages: [{ role: 'user', content: prompt }], stream_options: { include_usage: true } }, headers);
    const attemptsOf = (workflowId: string) => attemptsOfRequest(() => stack.farmLog(), workflowId);
    const usageOf = (r: Awaited<ReturnType<typeof streamChat>>) => r.events.find((e) => e.data.usage)?.data.usage;

    it('a stream cut mid-answer continues on a vLLM-style deployment: the whole answer once, then [DONE]', async () => {
      const key = `cont-vllm-${dispatch}-${Date.now()}`;
      const r = await streamChat('mixtral-vllm', { ...CUT, 'idempotency-key': key });
      assert.equal(r.text, mixtralAnswer, 'prefix + continuation is exactly the recorded answer: nothing repeated, nothing lost');
      assert.ok(r.done, 'ends with [DONE]');
      const attempts = await attemptsOf(r.workflowId);
      assert.deepEqual(
        attempts.map((a) => [a.pool, a.outcome, a.continuation?.style ?? null]),
        [
          ['cpu', 'stream-cut', null],
          ['gpu-a', 'ok', 'vllm'],
        ],
      );
      const cont = attempts[1]!.continuation!;
      assert.ok(cont.matched, 'the recording continued the prefix');
      assert.ok(cont.prefix_chars > 0 && cont.prefix_chars < mixtralAnswer.length, 'the prefix is the text before the cut');
      const streamedBeforeCut = r.events.filter((e) => e.id !== null && Number(e.id) <= cont.prefix_chars).length;
      assert.ok(streamedBeforeCut > 1, 'text before the cut reached the client live, in several chunks');

      // Trace and money: the cut call is billed for what it streamed, the continuation for the rest.
      const trace = finalChunk(r).cascade;
      const [cut, answer] = trace.attempts;
      assert.equal(cut.error, 'stream_incomplete');
      assert.ok(cut.cost_usd > 0, 'the streamed part of the cut call is billed');
      assert.deepEqual(answer.continued_from, { deployment: 'mixtral-vllm@cpu', chars: cont.prefix_chars });
      assert.ok(answer.accepted && answer.cost_usd > 0);
      assert.ok(Math.abs(trace.cost_usd - (cut.cost_usd + answer.cost_usd)) < 1e-12, 'both calls are in the total');
      const usage = usageOf(r);
      assert.ok(usage.completion_tokens > 0);
      assert.ok(
        Math.abs(costOfUsage(stack.config.models.get('mixtral-vllm')!, usage) - trace.cost_usd) < 1e-9,
        'the usage reported is both calls together: it costs exactly what the trace bills',
      );

      // The durable result is what was streamed: the same key answers from it, no new model call.
      const again = await stack.openai.chat.completions.create(
        { model: 'mixtral-vllm', messages: [{ role: 'user', content: prompt }] },
        { headers: { ...CUT, 'idempotency-key': key } },
      );
      assert.equal(again.choices[0]!.message.content, r.text);
      assert.equal((await attemptsOf(r.workflowId)).length, 2, 'no model call for the repeat');
    });

    it('a fallback serving another model continues DeepSeek/Mistral-style (prefix: true) from the text sent', async () => {
      const r = await streamChat('mixtral-prefix-fallback', CUT);
      const attempts = await attemptsOf(r.workflowId);
      assert.deepEqual(
        attempts.map((a) => [a.pool, a.outcome, a.continuation?.style ?? null]),
        [
          ['cpu', 'stream-cut', null],
          ['api', 'ok', 'prefix'],
        ],
      );
      const cont = attempts[1]!.continuation!;
      assert.equal(cont.matched, false, 'GPT-4 never wrote this text: the farm continues it synthetically');
      const sent = mixtralAnswer.slice(0, cont.prefix_chars);
      assert.ok(r.text.startsWith(sent), 'the client has the cheap model’s text first');
      assert.ok(r.text.slice(sent.length).startsWith(SIMULATED_CONTINUATION), 'then the continuation, not a restart');
      assert.ok(!r.text.slice(sent.length).includes(sent.slice(0, 40)), 'the sent text is not repeated');
      assert.ok(r.done, 'ends with [DONE]');
      assert.equal(finalChunk(r).cascade.attempts.at(-1).continued_from.chars, cont.prefix_chars);
    });

    it('without continuation support the fallback regenerates: a different text ends the stream with the in-band error', async () => {
      const r = await streamChat('mixtral-plain-fallback', CUT);
      assert.equal(r.status, 200);
      assert.ok(r.text.length > 0 && mixtralAnswer.startsWith(r.text), 'the text before the cut, and nothing spliced after it');
      assert.equal(r.done, false, 'no [DONE]');
      assert.equal(finalChunk(r), undefined, 'no finish_reason');
      const error = r.events.find((e) => e.data.error)?.data.error;
      assert.equal(error?.code, 'stream_interrupted');
      const attempts = await attemptsOf(r.workflowId);
      assert.deepEqual(
        attempts.map((a) => [a.pool, a.continuation]),
        [
          ['cpu', null],
          ['api', null],
        ],
        'the fallback was asked for a fresh answer',
      );
      assert.ok(!r.text.includes(gpt4Answer.slice(0, 20)), 'its different text never reached the client');
    });

    it('after a cut, a deployment that can continue is asked before one that would regenerate', async () => {
      const r = await streamChat('mixtral-either', CUT);
      assert.equal(r.text, mixtralAnswer);
      assert.ok(r.done);
      const attempts = await attemptsOf(r.workflowId);
      assert.deepEqual(
        attempts.map((a) => [a.pool, a.continuation?.style ?? null]),
        [
          ['cpu', null],
          ['gpu-a', 'vllm'],
        ],
        'the configured api deployment (no continuation) was never called',
      );
    });
  });
}
