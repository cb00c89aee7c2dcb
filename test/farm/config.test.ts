/** Config loading, start-up failures that name the problem, and the `npm run farm` CLI. */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { before, test } from 'node:test';
import { defineFarmConfig, FarmConfigError, loadFarmConfig, startFarm } from '../../farm/index.js';
import { DEFAULT_CONFIG, GPT4, MIXTRAL, silentLogger, TEST_CONFIG } from './helpers.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'farm-config-'));
});

async function writeConfig(name: string, text: string): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, text);
  return path;
}

test('the default config has the cpu, gpu-a and api pools on the documented ports', async () => {
  const config = await loadFarmConfig(DEFAULT_CONFIG, {});
  assert.deepEqual(
    Object.entries(config.pools).map(([name, p]) => [name, p.port, Object.keys(p.models)[0]]),
    [
      ['cpu', 9101, MIXTRAL],
      ['gpu-a', 9102, MIXTRAL],
      ['api', 9103, GPT4],
    ],
  );
  assert.ok(config.datasetPaths.every((p) => p.includes('/shared/data/routellm/')));
  assert.ok(!config.datasetPaths.some((p) => p.endsWith('mmlu.jsonl')));
});

test('CASCADE_DATA_DIR overrides the data root', async () => {
  const config = await loadFarmConfig(DEFAULT_CONFIG, { CASCADE_DATA_DIR: '/srv/data' });
  assert.deepEqual(config.datasetPaths, ['/srv/data/routellm/gsm8k.jsonl', '/srv/data/routellm/mt_bench.jsonl']);
});

test('loading gsm8k and mt_bench takes well under 2 s', async () => {
  const started = Date.now();
  const farm = await startFarm(await loadFarmConfig(TEST_CONFIG), { portOverride: 0, logger: silentLogger });
  const took = Date.now() - started;
  await farm.close();
  assert.ok(took < 2000, `start-up took ${took} ms`);
});

test('bad config stops loading with the file and the field path', async () => {
  const path = await writeConfig(
    'bad.yaml',
    `models:
  m: { backend: synthetic, context_window: 100 }
pools:
  cpu: { port: "eighty", models: { m: null } }
faults: [{ fault: explode }]
`,
  );
  await assert.rejects(loadFarmConfig(path), (err: Error) => {
    assert.ok(err instanceof FarmConfigError);
    assert.match(err.message, new RegExp(`^${path}: invalid farm config`));
    assert.match(err.message, /pools\.cpu\.port/);
    assert.match(err.message, /faults\.0\.fault/);
    return true;
  });
});

test('cross-references are checked: a pool serving an undefined model is named', async () => {
  const path = await writeConfig('undefined-model.yaml', 'models: {}\npools:\n  cpu: { port: 0, models: { ghost: null } }\n');
  await assert.rejects(loadFarmConfig(path), /pools\.cpu\.models\.ghost: model is not defined/);
});

test('a pool fallback must be "synthetic" or a llama model, and names the pool when it is not', async () => {
  const models = 'models:\n  real: { backend: replay, context_window: 100 }\n  sim: { backend: synthetic, context_window: 100 }\n';
  const path = await writeConfig('bad-fallback.yaml', `${models}datasets: [d.jsonl]\npools:\n  cpu: { port: 0, fallback: sim, models: { real: null } }\n`);
  await assert.rejects(loadFarmConfig(path), /pools\.cpu\.fallback: "sim" is neither "synthetic" nor a model with backend "llama"/);
});

test("${VAR:-default} in the config comes from the environment (the local model's GGUF path)", async () => {
  assert.match((await loadFarmConfig(DEFAULT_CONFIG, {})).ggufPaths['smollm2-135m-instruct']!, /\/\.data\/models\/SmolLM2-135M-Instruct\.Q4_1\.gguf$/);
  assert.equal((await loadFarmConfig(DEFAULT_CONFIG, { CASCADE_LOCAL_GGUF: '/srv/m.gguf' })).ggufPaths['smollm2-135m-instruct'], '/srv/m.gguf');
});

test('unreadable and non-YAML files are named', async () => {
  await assert.rejects(loadFarmConfig(join(dir, 'nope.yaml')), /nope\.yaml: cannot read farm config \(ENOENT\)/);
  const path = await writeConfig('broken.yaml', 'pools: [unclosed\n');
  await assert.rejects(loadFarmConfig(path), /broken\.yaml: not valid YAML/);
});

test('a missing data file stops start-up naming the file', async () => {
  const config = defineFarmConfig(
    {
      datasets: ['missing.jsonl'],
      models: { m: { backend: 'replay', context_window: 100 } },
      pools: { cpu: { port: 0, models: { m: null } } },
    },
    { baseDir: dir, env: {} },
  );
  await assert.rejects(startFarm(config, { logger: silentLogger }), (err: Error) => {
    assert.match(err.message, /datasets\.0 \(missing\.jsonl/);
    assert.ok(err.message.includes(join(dir, 'missing.jsonl')));
    return true;
  });
});

test('a replay model absent from the data stops start-up naming the model', async () => {
  await writeFile(join(dir, 'one.jsonl'), JSON.stringify({ id: '1', prompt: 'p', models: { real: { response: 'r' } } }) + '\n');
  const config = defineFarmConfig(
    {
      datasets: ['one.jsonl'],
      models: { typo: { backend: 'replay', context_window: 100 } },
      pools: { cpu: { port: 0, models: { typo: null } } },
    },
    { baseDir: dir, env: {} },
  );
  await assert.rejects(startFarm(config, { logger: silentLogger }), /models\.typo: no recorded responses for "typo".*recorded models: real/);
});

test('a llama model with a missing gguf file stops start-up naming the model', async () => {
  const config = defineFarmConfig(
    { models: { tiny: { backend: 'llama', gguf: 'models/tiny.gguf', context_size: 512 } }, pools: { cpu: { port: 0, models: { tiny: null } } } },
    { baseDir: dir, env: {} },
  );
  await assert.rejects(startFarm(config, { logger: silentLogger }), /models\.tiny\.gguf: file not found: .*models\/tiny\.gguf/);
});

test('a port already in use stops start-up naming the pool', async () => {
  const first = await startFarm(
    defineFarmConfig({ models: { m: { backend: 'synthetic', context_window: 100 } }, pools: { a: { port: 0, models: { m: null } } } }),
    {
      portOverride: 0,
      logger: silentLogger,
    },
  );
  const port = first.pools[0]!.port;
  try {
    const clash = defineFarmConfig({ models: { m: { backend: 'synthetic', context_window: 100 } }, pools: { b: { port, models: { m: null } } } });
    await assert.rejects(startFarm(clash, { logger: silentLogger }), new RegExp(`pools\\.b\\.port: cannot listen on 127\\.0\\.0\\.1:${port} \\(EADDRINUSE\\)`));
  } finally {
    await first.close();
  }
});

function runCli(args: string[], env: NodeJS.ProcessEnv = process.env) {
  return spawn(process.execPath, ['--import', 'tsx', 'farm/main.ts', ...args], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
}

async function cliFailure(args: string[], env?: NodeJS.ProcessEnv): Promise<{ code: unknown; stderr: string }> {
  const child = runCli(args, env);
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const code = await new Promise((r) => child.once('exit', r));
  return { code, stderr };
}

test('npm run farm prints one ready line per pool, then "farm ready"', async () => {
  const child = runCli(['--config', TEST_CONFIG, '--random-ports']);
  try {
    const lines: string[] = [];
    for await (const line of createInterface({ input: child.stdout! })) {
      lines.push(line);
      if (line === 'farm ready') break;
    }
    assert.equal(lines.length, 4);
    const pools = lines.slice(0, 3).map((l) => /^farm pool (\S+) ready (http:\/\/127\.0\.0\.1:\d+\/v1)$/.exec(l));
    assert.deepEqual(
      pools.map((m) => m?.[1]),
      ['cpu', 'gpu-a', 'api'],
    );
    const models = (await (await fetch(`${pools[2]![2]}/models`)).json()) as { data: { id: string }[] };
    assert.ok(models.data.some((m) => m.id === GPT4));
  } finally {
    child.kill('SIGTERM');
  }
  const code = await new Promise((r) => child.once('exit', r));
  assert.equal(code, 0, 'SIGTERM closes the farm cleanly');
});

test('the CLI exits 1 with a message naming the problem on bad config', async () => {
  const path = await writeConfig('cli-bad.yaml', 'models: {}\npools: {}\n');
  const { code, stderr } = await cliFailure(['--config', path]);
  assert.equal(code, 1);
  assert.match(stderr, /farm: start-up failed: .*cli-bad\.yaml: invalid farm config/);
  assert.match(stderr, /pools: at least one pool is required/);
});

test('the CLI exits 1 naming the data file when CASCADE_DATA_DIR points nowhere', async () => {
  const { code, stderr } = await cliFailure(['--config', TEST_CONFIG], { ...process.env, CASCADE_DATA_DIR: join(dir, 'no-data') });
  assert.equal(code, 1);
  assert.ok(stderr.includes(`file not found: ${join(dir, 'no-data', 'routellm', 'gsm8k.jsonl')}`), stderr);
});
