/**
 * Availability of the embedded stack (the `npm start` process layout) under crashes: two API
 * processes share the port and two router workers share the task queue, and a crashed child is
 * restarted at once. A client with the OpenAI SDK's default retries (2 retries, ~0.5-8 s backoff)
 * must not notice kill -9 of an API process or a router worker in the middle of its requests.
 */
import { after, before, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import { REPO_ROOT } from '../../config/load.js';
import { CascadeStack, isolatedStackEnv } from '../../scripts/lib/stack.js';
import { createPrinter } from '../../scripts/lib/log-lines.js';

const prompts = readFileSync(join(REPO_ROOT, '..', 'shared', 'data', 'routellm', 'gsm8k.jsonl'), 'utf8')
  .split('\n')
  .slice(0, 8)
  .map((l) => JSON.parse(l).prompt as string);

const dir = mkdtempSync(join(tmpdir(), 'cascade-availability-'));
const output: string[] = [];
let stack: CascadeStack;
let openai: OpenAI;

before(async () => {
  const { CASCADE_API_KEYS: _keys, ...env } = process.env;
  stack = new CascadeStack({
    env: {
      ...env,
      ...(await isolatedStackEnv(dir)),
    },
    farmConfigPath: join(REPO_ROOT, 'config', 'farm.test.yaml'),
    print: createPrinter((s) => output.push(s)),
    onFatal: (reason) => output.push(`fatal: ${reason}\n`),
  });
  await stack.start();
  // The SDK's defaults: 2 retries with its own backoff. Nothing here is tuned for the test.
  openai = new OpenAI({ baseURL: `${stack.apiBase}/v1`, apiKey: 'unused' });
});

after(async () => {
  await stack?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** One request, streaming or not, every first token 1.5 s late so that it is in flight when the kill comes. */
async function ask(i: number, tag: string): Promise<string> {
  const headers = { 'x-farm-fault': 'slow-first-token', 'x-farm-fault-delay-ms': '1500', ...(i % 2 === 0 && { 'Idempotency-Key': `${tag}-${i}` }) };
  const messages = [{ role: 'user' as const, content: prompts[i]! }];
  if (i % 4 < 2) {
    const r = await openai.chat.completions.create({ model: 'cascade', messages }, { headers });
    return r.choices[0]!.message.content ?? '';
  }
  const stream = await openai.chat.completions.create({ model: 'cascade', messages, stream: true }, { headers });
  let text = '';
  for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
  return text;
}

const pidOf = (name: string) => {
  const pid = stack.pids().get(name);
  assert.ok(pid, `${name} is running (${[...stack.pids().keys()].join(', ')})`);
  return pid;
};

async function restartedAfter(name: string, victim: number): Promise<number> {
  for (let i = 0; i < 300; i++) {
    const pid = stack.pids().get(name);
    if (pid && pid !== victim && output.some((l) => l.includes(`${name} pid ${pid} ready (restarted)`))) return pid;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail(`${name} was not restarted; output:\n${output.slice(-20).join('')}`);
}

for (const role of ['api#1', 'router#1']) {
  it(`kill -9 of ${role} in the middle of 8 requests: every request is answered, and ${role} is back at once`, { timeout: 120_000 }, async () => {
    const victim = pidOf(role);
    const pending = prompts.map((_, i) => ask(i, `${role}-${victim}`));
    await new Promise((r) => setTimeout(r, 700)); // every request is waiting for its first token
    process.kill(victim, 'SIGKILL');
    const answers = await Promise.allSettled(pending);
    const failed = answers.flatMap((a, i) => (a.status === 'rejected' ? [`request ${i}: ${(a.reason as Error).message}`] : []));
    assert.deepEqual(failed, [], 'no request failed at the client');
    for (const a of answers) assert.ok(a.status === 'fulfilled' && a.value.length > 0);
    const pid = await restartedAfter(role, victim);
    assert.ok(
      output.some((l) => l.includes(`restarting ${role}\n`)),
      'restarted without a delay: one crash is not a crash loop',
    );
    assert.notEqual(pid, victim);
  });
}

it(
  'with every API process killed at once, a new request waits at the API port for a restarted one instead of being refused',
  { timeout: 120_000 },
  async () => {
    const victims = ['api#1', 'api#2'].map(pidOf);
    const apiRestarts = () => output.filter((l) => /\| api#\d pid \d+ ready \(restarted\)/.test(l)).length;
    const restartsBefore = apiRestarts();
    for (const pid of victims) process.kill(pid, 'SIGKILL');
    // Long enough for idle keep-alive connections to the dead processes to be closed, too short for
    // a restart (seconds): the request below finds no API process up.
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(apiRestarts(), restartsBefore, 'no API process is back yet');
    // No retries at all: only the port holding the connection can make this succeed.
    const noRetries = new OpenAI({ baseURL: `${stack.apiBase}/v1`, apiKey: 'unused', maxRetries: 0 });
    const r = await noRetries.chat.completions.create({ model: 'cascade', messages: [{ role: 'user', content: prompts[0]! }] });
    assert.ok(r.choices[0]!.message.content);
    await restartedAfter('api#1', victims[0]!);
    await restartedAfter('api#2', victims[1]!);
  },
);
