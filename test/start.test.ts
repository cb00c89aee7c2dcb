/**
 * `npm start` as a user runs it (compiled by scripts/build.mjs, then .build/scripts/start.js, as
 * bootstrap.mjs does; every port random, a temporary Temporal history): it gets ready with every
 * child running compiled JavaScript, answers a real request, survives kill -9 of a pool worker in
 * the middle of a request (the request still succeeds and the worker comes back), and SIGINT
 * stops every process it started.
 */
import { after, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { createInterface } from 'node:readline';
import OpenAI from 'openai';
import { REPO_ROOT } from '../config/load.js';
import { freePort } from '../scripts/temporal-dev-server.js';
import { writeTinyGguf } from '../farm/tools/make-tiny-gguf.js';

const JANET =
  "Janet’s ducks lay 16 eggs per day. She eats three for breakfast every morning and bakes muffins for her friends every day with four. She sells the remainder at the farmers' market daily for $2 per fresh duck egg. How much in dollars does she make every day at the farmers' market?";

const dir = mkdtempSync(join(tmpdir(), 'cascade-start-'));
let start: ChildProcess | null = null;
/** Every pid npm start reported, by child name (a restarted child adds its new pid). */
const pids: { name: string; pid: number }[] = [];
const lines: string[] = [];
const waiters: { match: RegExp; resolve: (m: RegExpExecArray) => void }[] = [];

function nextLine(match: RegExp, timeoutMs: number, what: string): Promise<RegExpExecArray> {
  const seen = lines.map((l) => match.exec(l)).find((m) => m);
  if (seen) return Promise.resolve(seen);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${what} within ${timeoutMs / 1000} s; output:\n${lines.slice(-40).join('\n')}`)), timeoutMs);
    waiters.push({ match, resolve: (m) => (clearTimeout(timer), resolve(m)) });
  });
}

const isAlive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

after(() => {
  // Only when the test failed half-way: nothing it started may outlive it.
  if (start && start.exitCode === null) start.kill('SIGKILL');
  for (const { pid } of pids) if (isAlive(pid)) process.kill(pid, 'SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

it('npm start runs the stack, survives a killed pool worker and stops everything on SIGINT', { timeout: 180_000 }, async () => {
  const [apiPort, temporalPort, uiPort, codecPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const { CASCADE_API_KEYS: _keys, OPENAI_API_KEY: _openai, ...env } = process.env;
  // The farm's local model, without the 98 MB download npm start makes on first run.
  const gguf = join(dir, 'tiny.gguf');
  await writeTinyGguf(gguf, { chatTemplate: 'chatml' });
  assert.equal(spawnSync(process.execPath, [join(REPO_ROOT, 'scripts', 'build.mjs')], { stdio: 'inherit' }).status, 0, 'the build');
  start = spawn(process.execPath, [join(REPO_ROOT, '.build', 'scripts', 'start.js')], {
    cwd: REPO_ROOT,
    env: {
      ...env,
      PORT: String(apiPort),
      TEMPORAL_ADDRESS: `127.0.0.1:${temporalPort}`,
      CASCADE_UI_PORT: String(uiPort),
      CASCADE_CODEC_PORT: String(codecPort),
      CASCADE_TEMPORAL_DB: join(dir, 'temporal.db'),
      CASCADE_KEYS_FILE: join(dir, 'api-keys.json'), // a keys file in the checkout would turn authentication on
      CASCADE_PROMETHEUS_TARGETS: join(dir, 'prometheus-targets.json'),
      CASCADE_FARM_RANDOM_PORTS: '1',
      CASCADE_LOCAL_GGUF: gguf,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<number | null>((resolve) => start!.once('exit', (code) => resolve(code)));
  for (const stream of [start.stdout!, start.stderr!]) {
    createInterface({ input: stream }).on('line', (line) => {
      lines.push(line);
      const started = /\| (\S+) pid (\d+) ready/.exec(line);
      if (started) pids.push({ name: started[1]!, pid: Number(started[2]) });
      for (const w of waiters.filter((w) => w.match.test(line))) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(w.match.exec(line)!);
      }
    });
  }

  const ready = await nextLine(/Cascade ready: (\S+) \(Temporal UI: (\S+)\)/, 150_000, 'ready line');
  assert.equal(ready[1], `http://127.0.0.1:${apiPort}/v1`);
  assert.equal(ready[2], `http://127.0.0.1:${uiPort}`);
  assert.match((await nextLine(/^curl .*/, 1000, 'sample curl'))[0], new RegExp(`http://127\\.0\\.0\\.1:${apiPort}/v1/chat/completions`));
  // Start-up says nothing that is not a problem: no SDK notice about activity-only workers, no
  // missing key for a deployment not called yet, no pool taking more calls than its farm pool serves.
  for (const noise of [/No workflows registered/, /API key environment variable is not set/, /warning: pool/])
    assert.equal(lines.filter((l) => noise.test(l)).length, 0, `${noise}:\n${lines.join('\n')}`);
  // The Temporal UI is pointed at the API's codec endpoint, which answers the UI's page.
  assert.ok(
    lines.some((l) => l.includes(`codec endpoint http://127.0.0.1:${codecPort}`)),
    'codec endpoint printed',
  );
  const codec = await fetch(`http://127.0.0.1:${codecPort}/decode`, {
    method: 'POST',
    headers: { origin: `http://127.0.0.1:${uiPort}` },
    body: '{"payloads": []}',
  });
  assert.equal(codec.status, 200);
  assert.equal(codec.headers.get('access-control-allow-origin'), `http://127.0.0.1:${uiPort}`);
  // Every process's scrape URL is printed, and each answers with Cascade's series.
  const scrapeLine = lines.find((l) => l.includes('Prometheus metrics, one endpoint per process'));
  assert.ok(scrapeLine, 'metrics line printed');
  const scrapeUrls = Object.fromEntries([...scrapeLine.matchAll(/(\S+) (http:\/\/\S+\/metrics)/g)].map((m) => [m[1]!, m[2]!]));
  // One URL per process, the API processes each on its own port (not the front's).
  assert.deepEqual(Object.keys(scrapeUrls).sort(), ['api#1', 'api#2', 'pool:api', 'pool:cpu', 'pool:gpu-a', 'router#1', 'router#2']);
  assert.notEqual(scrapeUrls['api#1'], `http://127.0.0.1:${apiPort}/metrics`);
  for (const [name, series] of [
    ['api#1', 'cascade_requests_in_flight'],
    ['api#2', 'cascade_requests_in_flight'],
    ['router#1', 'cascade_router_cached_workflows'],
    ['pool:cpu', 'process_cpu_seconds_total'],
  ])
    assert.match(await (await fetch(scrapeUrls[name!]!)).text(), new RegExp(`^${series}\\{[^}]*process="${name!.split('#')[0]}"`, 'm'));
  // The same URLs in Prometheus's file-based discovery format, where npm start says it wrote them.
  const targetsFile = join(dir, 'prometheus-targets.json');
  assert.ok(
    lines.some((l) => l.includes(`Prometheus scrape targets (file_sd_configs, kept up to date): ${targetsFile}`)),
    'targets file printed',
  );
  const targetsOf = () =>
    Object.fromEntries(
      (JSON.parse(readFileSync(targetsFile, 'utf8')) as { targets: string[]; labels: Record<string, string> }[]).map((g) => [
        g.labels.cascade_process!,
        `http://${g.targets[0]}${g.labels.__metrics_path__}`,
      ]),
    );
  assert.deepEqual(targetsOf(), scrapeUrls);
  const names = pids.map((p) => p.name);
  for (const name of ['temporal', 'farm', 'pool:cpu', 'pool:gpu-a', 'pool:api', 'router#1', 'router#2', 'api#1', 'api#2'])
    assert.ok(names.includes(name), `${name} reported its pid`);
  // Plain JavaScript from .build/, no tsx loader (and no esbuild helper) in any child; processes
  // that run workflows preload the plain-JavaScript workers/workflow-threads.mjs.
  for (const { name, pid } of pids.filter((p) => p.name !== 'temporal')) {
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    let i = 1;
    const preloads: string[] = [];
    while (argv[i] === '--import') {
      preloads.push(argv[i + 1]!);
      i += 2;
    }
    assert.ok(argv[i]!.startsWith(join(REPO_ROOT, '.build')) && !argv.includes('tsx'), `${name}: ${argv.join(' ')}`);
    const runsWorkflows = name.startsWith('router') || name.startsWith('api');
    assert.deepEqual(preloads, runsWorkflows ? [pathToFileURL(join(REPO_ROOT, 'workers', 'workflow-threads.mjs')).href] : [], `${name}: ${argv.join(' ')}`);
  }

  const openai = new OpenAI({ baseURL: ready[1], apiKey: 'unused', maxRetries: 0, timeout: 60_000 });
  const first = (await openai.chat.completions.create({ model: 'cascade', messages: [{ role: 'user', content: JANET }] })) as any;
  assert.equal(first.model, 'mistralai/Mixtral-8x7B-Instruct-v0.1');
  assert.match(first.choices[0].message.content, /18/);
  assert.equal(first.cascade.attempts[0].pool, 'cpu');

  // The cpu pool worker dies while it serves the next request (the farm's cpu pool takes seconds).
  const victim = pids.find((p) => p.name === 'pool:cpu')!.pid;
  const second = openai.chat.completions.create({ model: 'cascade', messages: [{ role: 'user', content: JANET }] });
  await new Promise((r) => setTimeout(r, 1500));
  process.kill(victim, 'SIGKILL');
  const answer = (await second) as any;
  assert.match(answer.choices[0].message.content, /18/);
  await nextLine(/pool:cpu \(pid \d+\) was killed by SIGKILL/, 5000, 'crash report');
  const restarted = await nextLine(/\| pool:cpu pid (\d+) ready \(restarted\)/, 30_000, 'restarted pool worker');
  assert.notEqual(Number(restarted[1]), victim);
  // The targets file follows the restarted worker to its new port.
  assert.match(await (await fetch(targetsOf()['pool:cpu']!)).text(), /^process_cpu_seconds_total\{[^}]*process="pool:cpu"/m);

  // The key is missed when a deployment that needs one is first called, once.
  await openai.chat.completions.create({ model: 'gpt-4', messages: [{ role: 'user', content: 'hello' }], max_tokens: 5 });
  await nextLine(/API key environment variable is not set/, 5000, 'missing-key warning at first use');

  start.kill('SIGINT');
  assert.equal(await exited, 0);
  assert.match(lines.at(-1)!, /Cascade stopped: every process it started has exited/);
  const alive = pids.filter((p) => isAlive(p.pid));
  assert.deepEqual(alive, [], 'every child npm start reported has exited');
});
