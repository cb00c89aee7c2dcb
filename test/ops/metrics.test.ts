/**
 * Prometheus metrics, scraped over HTTP from the API and from worker processes after known
 * requests: counts must match what was sent and what the farm's attempt log saw.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { GPT4, MIXTRAL, startStack, type Stack } from '../helpers/stack.js';
import { apiMetricsUrl, declaredSeries, scrape, sum } from '../helpers/metrics.js';
import { parser as promql } from '@prometheus-io/lezer-promql';

const janet = JSON.parse(readFileSync(new URL('../../../shared/data/routellm/gsm8k.jsonl', import.meta.url), 'utf8').split('\n')[0]!).prompt as string;

const post = (stack: Stack, body: object, headers: Record<string, string> = {}) =>
  fetch(`${stack.apiUrl}/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });

let stack: Stack;
before(async () => {
  stack = await startStack({ routerProcess: true, poolProcesses: ['cpu', 'gpu-a', 'api'] });
});
after(async () => {
  await stack?.close();
});

describe('metrics', () => {
  it('counts requests, escalations, failovers, retries, cost and latency as the requests and the farm saw them', async () => {
    const ask = { model: 'cascade', messages: [{ role: 'user', content: janet }] };
    const results: any[] = [];
    const accepted = await post(stack, ask); // step 1 answers on cpu
    results.push(await accepted.json());
    const escalated = await post(stack, { ...ask, response_format: { type: 'json_object' } }); // rejected, GPT-4 answers
    results.push(await escalated.json());
    // cpu fails every attempt of three calls: retried, failed over to gpu-a, and its circuit opens.
    const failing = await Promise.all([1, 2, 3].map(() => post(stack, ask, { 'x-farm-fault': 'unavailable;pool=cpu' })));
    for (const r of failing) results.push(await r.json());
    const streamed = await post(stack, { ...ask, stream: true });
    assert.equal(streamed.status, 200);
    await streamed.text();
    const missing = await post(stack, { ...ask, model: 'no-such-model' });
    assert.equal(missing.status, 404);

    assert.deepEqual(
      results.map((r) => [r.model, r.cascade.final_step]),
      [
        [MIXTRAL, 1],
        [GPT4, 2],
        [MIXTRAL, 1],
        [MIXTRAL, 1],
        [MIXTRAL, 1],
      ],
    );
    const failoverAttempts = (await stack.farmLog({ pool: 'cpu' })).filter((a) => a.fault === 'unavailable');

    const api = await scrape(apiMetricsUrl(stack.apiUrl));
    assert.equal(sum(api, 'cascade_requests_total', { policy: 'default', final_step: '1', model: MIXTRAL, status: '200' }), 5);
    assert.equal(sum(api, 'cascade_requests_total', { policy: 'default', final_step: '2', model: GPT4, status: '200' }), 1);
    assert.equal(sum(api, 'cascade_requests_total', { status: '404', code: 'model_not_found' }), 1);
    assert.equal(sum(api, 'cascade_escalations_total', { policy: 'default' }), 1);
    // Three failed calls on cpu, each retried on cpu until its attempts ran out, then gpu-a.
    assert.equal(sum(api, 'cascade_failovers_total', { model: MIXTRAL, from_pool: 'cpu' }), failing.length);
    assert.ok(failoverAttempts.length > failing.length);
    assert.equal(sum(api, 'cascade_retries_total', { pool: 'cpu' }), failoverAttempts.length - failing.length);
    // Cost: every billed call, equal to the traces' totals; the top-model counterfactual is GPT-4's price of each answer.
    const cost = results.reduce((a, r) => a + r.cascade.cost_usd, 0);
    assert.ok(Math.abs(sum(api, 'cascade_cost_usd_total', { policy: 'default' }) - cost) < 1e-6 + cost * 0.01);
    const streamedCost = sum(api, 'cascade_cost_usd_total') - cost;
    assert.ok(streamedCost > 0, 'the streamed request is billed too');
    const top = results.reduce((a, r) => a + ((r.usage.prompt_tokens + r.usage.completion_tokens) * 24.7) / 1e6, 0);
    const topTotal = sum(api, 'cascade_top_model_cost_usd_total', { policy: 'default' });
    assert.ok(topTotal > top, 'includes the streamed request');
    assert.ok(Math.abs(sum(api, 'cascade_saved_usd', { policy: 'default' }) - (topTotal - cost - streamedCost)) < 1e-6);
    // Latency: one observation per request; a stream's first byte comes before its last.
    assert.equal(sum(api, 'cascade_request_seconds_count', { stream: 'false' }), 6);
    assert.equal(sum(api, 'cascade_request_seconds_count', { stream: 'true' }), 1);
    assert.ok(sum(api, 'cascade_ttft_seconds_sum', { stream: 'true' }) <= sum(api, 'cascade_request_seconds_sum', { stream: 'true' }));
    // The evaluator scored step 1 of every answered request; it rejected one of them.
    assert.equal(sum(api, 'cascade_evaluator_confidence_count', { step: '1', model: MIXTRAL }), 6);
    assert.equal(sum(api, 'cascade_step_seconds_count', { step: '1', outcome: 'rejected' }), 1);
    assert.equal(sum(api, 'cascade_step_seconds_count', { step: '1', outcome: 'error' }), failing.length);
    assert.equal(sum(api, 'cascade_requests_in_flight'), 0);
    assert.ok(api.some((s) => s.name === 'cascade_workflows_running'));

    // The cpu pool worker saw exactly the attempts the farm logged for it.
    const cpuLog = await stack.farmLog({ pool: 'cpu' });
    const cpu = await scrape(stack.metricsUrl('pool:cpu'));
    assert.ok(cpu.every((s) => s.labels.process === 'pool:cpu'));
    assert.equal(sum(cpu, 'cascade_pool_schedule_to_start_seconds_count', { pool: 'cpu' }), cpuLog.length);
    assert.equal(sum(cpu, 'cascade_pool_calls_total', { pool: 'cpu', outcome: 'ok' }), cpuLog.filter((a) => a.fault === null).length);
    assert.equal(sum(cpu, 'cascade_pool_retries_total', { pool: 'cpu' }), failoverAttempts.length - failing.length);
    assert.equal(sum(cpu, 'cascade_pool_calls_in_flight', { pool: 'cpu' }), 0);
    assert.ok(sum(cpu, 'process_cpu_seconds_total') > 0, 'process metrics too');

    // The router opened cpu's circuit after the third failed call (2 open, 1 half-open once the pause is over).
    const router = await scrape(stack.metricsUrl('router'));
    assert.ok(
      [1, 2].includes(sum(router, 'cascade_breaker_state', { deployment: `${MIXTRAL}@cpu` })),
      JSON.stringify(router.filter((s) => s.name === 'cascade_breaker_state')),
    );
    assert.equal(sum(router, 'cascade_breaker_state', { deployment: `${MIXTRAL}@gpu-a` }), 0);
  });

  it('a request repeated with its Idempotency-Key counts as a second request, but its calls and cost once', async () => {
    const metricsUrl = apiMetricsUrl(stack.apiUrl);
    const metricsBefore = await scrape(metricsUrl);
    const headers = { 'idempotency-key': `metrics-repeat-${Date.now()}` };
    const ask = { model: 'cascade', messages: [{ role: 'user', content: janet }] };
    const first = await post(stack, ask, headers);
    const firstBody = (await first.json()) as any;
    const again = await post(stack, ask, headers);
    const againBody = (await again.json()) as any;
    assert.equal(again.headers.get('x-cascade-workflow-id'), first.headers.get('x-cascade-workflow-id'));
    assert.equal(againBody.cascade.cost_usd, firstBody.cascade.cost_usd);
    assert.equal((await stack.farmLog()).filter((a) => a.request_id?.startsWith(firstBody.cascade.workflow_id)).length, 1, 'one model call');
    const metricsAfter = await scrape(metricsUrl);
    const delta = (name: string, where: Record<string, string> = {}) => sum(metricsAfter, name, where) - sum(metricsBefore, name, where);
    assert.equal(delta('cascade_requests_total', { policy: 'default', status: '200' }), 2);
    assert.ok(Math.abs(delta('cascade_cost_usd_total', { policy: 'default' }) - firstBody.cascade.cost_usd) < 1e-9);
    assert.equal(delta('cascade_evaluator_confidence_count', { policy: 'default' }), 1);
    assert.equal(delta('cascade_step_seconds_count', { policy: 'default' }), firstBody.cascade.attempts.filter((a: any) => a.latency_ms !== null).length);
  });

  it('the Grafana dashboard in docs/ is valid PromQL over series the processes expose', async () => {
    const dashboard = JSON.parse(readFileSync(new URL('../../docs/grafana/cascade-dashboard.json', import.meta.url), 'utf8')) as {
      panels: { title: string; targets?: { expr: string }[] }[];
    };
    const exposed = new Set<string>();
    for (const url of [apiMetricsUrl(stack.apiUrl), stack.metricsUrl('router'), stack.metricsUrl('pool:cpu')])
      for (const name of await declaredSeries(url)) exposed.add(name);
    const queried = new Set<string>();
    let queries = 0;
    for (const panel of dashboard.panels)
      for (const { expr } of panel.targets ?? []) {
        queries++;
        // Grafana substitutes its variables before Prometheus sees the query.
        const query = expr.replaceAll('$__rate_interval', '5m');
        const tree = promql.parse(query);
        tree.iterate({
          enter: (node) => {
            assert.ok(!node.type.isError, `${panel.title}: not PromQL at ${node.from}: ${query}`);
            if (node.name === 'Identifier') queried.add(query.slice(node.from, node.to));
          },
        });
      }
    assert.ok(queries >= 20, `${queries} queries`);
    const missing = [...queried].filter((name) => !exposed.has(name));
    assert.deepEqual(missing, [], 'series the dashboard queries that no process exposes');
    // Every Cascade series a process exposes has a panel (a histogram through any of its parts).
    const shown = (n: string) => ['', '_bucket', '_sum', '_count'].some((suffix) => queried.has(n + suffix));
    const unshown = [...exposed].filter((n) => n.startsWith('cascade_') && !/_(bucket|sum|count)$/.test(n) && !shown(n));
    assert.deepEqual(unshown, [], 'Cascade series without a panel');
  });
});
