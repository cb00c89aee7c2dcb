/**
 * Learning from traffic on the real stack (Temporal + farm): a policy whose cheap step is rejected
 * on every request. After min_samples requests the stats entity marks the step unprofitable, the
 * router worker's cached copy picks it up, and from then on the farm's attempt log shows the cheap
 * model called only for the probes (exactly the requests isProbe names); the requests that skip it
 * cost exactly the top step alone, and the entity's durable totals equal the responses' own costs.
 * A document job shows the same on its chunks (each chunk is a cascade of the same policy).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { GPT4, MIXTRAL, startStack, type Stack } from '../helpers/stack.js';
import { isProbe, ladderHash } from '../../workflows/learn.js';
import { learnedStatsQuery, learnWorkflowId, type LearnSnapshot } from '../../workflows/learn-workflow.js';
import { documentText, documentsClient, sleep } from '../documents/helpers.js';

const prompts = readFileSync(new URL('../../../shared/data/routellm/gsm8k.jsonl', import.meta.url), 'utf8')
  .split('\n')
  .filter(Boolean)
  .slice(0, 60)
  .map((l) => JSON.parse(l).prompt as string);
const LEARN = { window: 100, min_samples: 5, probe_every: 4, margin: 0.1, refresh_ms: 100 };
// The recorded Mixtral answers are prose: asked for a JSON object, every one fails the validators.
const learner = {
  steps: [{ model: MIXTRAL, evaluator: { type: 'validators' }, threshold: 0.5 }, { model: GPT4 }],
  deadline_ms: 20000,
  max_cost_usd: 0.5,
  learn: LEARN,
};
// sim-small's token logprobs never reach a confidence of 1: every chunk is rejected.
const docLearner = {
  steps: [{ model: 'sim-small', evaluator: { type: 'logprob' }, threshold: 1 }, { model: 'sim-large' }],
  deadline_ms: 20000,
  max_cost_usd: 0.5,
  learn: { ...LEARN, probe_every: 10 },
};

let stack: Stack;
before(async () => {
  stack = await startStack({
    configure: (raw) => {
      raw.policies.learner = learner;
      raw.policies['doc-learner'] = docLearner;
      raw.documents.chunk_tokens = 100;
      // Chunks in flight before the router's copy shows the decision all run the cheap step: with
      // 8 at a time (the default) that is ~3 waves of 8 on a slow machine (CI saw 30 of 60), which
      // says more about the machine than about learning. Two at a time keeps the lag to a few chunks.
      raw.documents.concurrency = 2;
      raw.documents.overlap_tokens = 10;
    },
  });
});
after(async () => {
  await stack?.close();
});

interface Sent {
  workflowId: string;
  cascade: any;
}
async function ask(i: number): Promise<Sent> {
  const res = await fetch(`${stack.apiUrl}/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      model: 'cascade:learner',
      messages: [{ role: 'user', content: prompts[i % prompts.length] }],
      response_format: { type: 'json_object' },
    }),
  });
  const body = (await res.json()) as any;
  assert.equal(res.status, 200, JSON.stringify(body));
  assert.equal(body.model, GPT4);
  return { workflowId: res.headers.get('x-cascade-workflow-id')!, cascade: body.cascade };
}

const entity = (policy: string, steps: typeof learner.steps | typeof docLearner.steps) =>
  stack.client.workflow.getHandle(
    learnWorkflowId(
      stack.config.raw.temporal.task_queue,
      policy,
      ladderHash(steps.map((s) => ({ model: s.model, evaluator: (s as any).evaluator ?? { type: 'none' }, threshold: (s as any).threshold ?? 0.5 }))),
    ),
  );

/** The entity's snapshot once `done` holds (bounded: it collects every refresh_ms). */
async function snapshotWhen(policy: string, steps: any, done: (s: LearnSnapshot) => boolean): Promise<LearnSnapshot> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const s = await entity(policy, steps)
      .query(learnedStatsQuery)
      .catch(() => null);
    if (s && done(s)) return s;
    if (Date.now() > deadline) throw new Error(`learned stats of ${policy} never got there: ${JSON.stringify(s)}`);
    await sleep(100);
  }
}

const gpt4Cost = (c: any) => c.attempts.filter((a: any) => a.model === GPT4).reduce((x: number, a: any) => x + a.cost_usd, 0);
const mixtralCost = (c: any) => c.attempts.filter((a: any) => a.model === MIXTRAL).reduce((x: number, a: any) => x + a.cost_usd, 0);
const mixtralCalls = async (workflowId: string) => (await stack.farmLog({ model: MIXTRAL })).filter((a) => a.request_id?.startsWith(`${workflowId}/`));

describe('learning from traffic', () => {
  it('skips a cheap step that is always rejected after min_samples requests, probes it, and costs the top step alone otherwise', async () => {
    const sent: Sent[] = [];
    // Learning: the cheap step runs (and is rejected) on the first min_samples requests.
    for (let i = 0; i < LEARN.min_samples; i++) sent.push(await ask(i));
    for (const s of sent) {
      assert.equal(s.cascade.attempts[0].model, MIXTRAL);
      assert.equal(s.cascade.attempts[0].accepted, false);
      assert.equal((await mixtralCalls(s.workflowId)).length, 1);
    }
    const learned = await snapshotWhen('learner', learner.steps, (s) => s.decisions['1']?.skip === true);
    assert.equal(learned.decisions['1']!.acceptance, 0);
    assert.equal(learned.decisions['1']!.samples, LEARN.min_samples);

    // The router workers refresh their copy every refresh_ms: a few requests may still run the step.
    let lag = 0;
    for (;;) {
      const s = await ask(sent.length);
      sent.push(s);
      if (s.cascade.attempts[0].error === 'skipped:unprofitable') break;
      assert.ok(++lag <= 20, 'the router never saw the decision');
    }

    // From now on: the cheap model is called for the probes only, exactly the requests isProbe names.
    const window: Sent[] = [sent.at(-1)!];
    for (let i = 0; i < 24; i++) window.push(await ask(sent.length + i));
    sent.push(...window.slice(1));
    let probes = 0;
    for (const s of window) {
      const probe = isProbe(s.workflowId, 1, LEARN.probe_every);
      const calls = await mixtralCalls(s.workflowId);
      if (probe) {
        probes++;
        assert.deepEqual(s.cascade.probes, [1], s.workflowId);
        assert.equal(calls.length, 1);
        assert.equal(s.cascade.attempts[0].accepted, false);
      } else {
        assert.equal(calls.length, 0, `${s.workflowId} called ${MIXTRAL}`);
        assert.equal(s.cascade.attempts[0].error, 'skipped:unprofitable');
        assert.match(
          s.cascade.attempts[0].detail,
          /accepted 0\.00 of the last \d+ requests: \$[0-9.e-]+ \+ \(1 − 0\.00\) × \$[0-9.e-]+ ≥ \$[0-9.e-]+ without it/,
        );
        assert.equal(s.cascade.escalations, 0, 'a skipped step is not an escalation');
        assert.equal(s.cascade.cost_usd, gpt4Cost(s.cascade), 'a request that skips the step costs the top step alone');
      }
    }
    assert.ok(probes < window.length, 'most requests skip the step');

    // Over the run: the cascade cost the top step alone plus only what the cheap step was paid for
    // while learning (min_samples + lag) and as probes.
    const total = sent.reduce((x, s) => x + s.cascade.cost_usd, 0);
    const topAlone = sent.reduce((x, s) => x + gpt4Cost(s.cascade), 0);
    const cheapPaid = sent.reduce((x, s) => x + mixtralCost(s.cascade), 0);
    const cheapRuns = sent.filter((s) => mixtralCost(s.cascade) > 0).length;
    assert.equal(cheapRuns, LEARN.min_samples + lag + probes);
    assert.ok(Math.abs(total - (topAlone + cheapPaid)) < 1e-9);
    assert.ok(cheapPaid < 0.02 * topAlone, `learning allowance ${cheapPaid} vs top alone ${topAlone}`);
    // Over the window after learning: top alone plus the probes, nothing else.
    const windowTotal = window.reduce((x, s) => x + s.cascade.cost_usd, 0);
    const windowTop = window.reduce((x, s) => x + gpt4Cost(s.cascade), 0);
    const probesPaid = window.filter((s) => s.cascade.probes).reduce((x, s) => x + mixtralCost(s.cascade), 0);
    assert.ok(Math.abs(windowTotal - windowTop - probesPaid) < 1e-9);

    // The durable stats are derived from the workflows: they hold every request with its real cost.
    const final = await snapshotWhen('learner', learner.steps, (s) => s.processed >= sent.length);
    assert.equal(final.processed, sent.length);
    assert.equal(final.recent.requests, sent.length);
    assert.ok(Math.abs(final.recent.cost_usd - total) < 1e-6, `${final.recent.cost_usd} vs ${total}`);
    assert.ok(Math.abs(final.recent.top_cost_usd - topAlone) < 1e-6);
    assert.equal(final.decisions['1']!.samples, LEARN.min_samples + lag + probes, 'skipped requests add no samples, probes do');
  });

  it('a classify job on such a policy stops paying for the cheap step after min_samples chunks', async () => {
    const docs = documentsClient(stack);
    const id = await docs.start({ model: 'cascade:doc-learner', task: 'classify', labels: ['finance', 'engineering'], text: documentText(60, 'learn') });
    const done = await docs.waitFor(id, (j) => j.status === 'completed', 180_000);
    const total = done.chunks.total;
    assert.ok(total >= 30, `${total} chunks`);
    const calls = await docs.callsByUnit(id);
    const cheap = [...calls.values()].filter((c) => c.some((x) => x.model === 'sim-small')).length;
    // min_samples chunks, those in flight before the router saw the decision, and 1 in probe_every after.
    assert.ok(cheap >= LEARN.min_samples && cheap < total / 2, `sim-small called for ${cheap} of ${total} chunks`);
    for (const c of calls.values()) assert.equal(c.filter((x) => x.model === 'sim-large').length, 1, 'every chunk is answered by the strong model');
    // Against every chunk on the strong model alone, the job pays only that learning allowance.
    const allowance = done.cost_usd - done.baseline_cost_usd;
    assert.ok(allowance >= 0 && allowance < 0.01 * done.baseline_cost_usd, `cost ${done.cost_usd} vs strong alone ${done.baseline_cost_usd}`);
    console.log(
      `# classify, ${total} chunks: cost $${done.cost_usd.toFixed(6)}, strong model alone $${done.baseline_cost_usd.toFixed(6)}, sim-small called on ${cheap} chunks`,
    );
  });
});
