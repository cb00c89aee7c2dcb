/**
 * `npm start`: the whole stack on 127.0.0.1 (scripts/lib/stack.ts: Temporal dev server, model
 * farm, pool workers, router worker, API), then the ready line and a curl that works. Ctrl-C or
 * SIGTERM stops every process it started and exits 0; a failed start-up stops them and exits 1.
 *
 * Environment: CASCADE_CONFIG, PORT, CASCADE_UI_PORT, CASCADE_CODEC_PORT, CASCADE_FARM_RANDOM_PORTS=1,
 * CASCADE_PROMETHEUS_TARGETS (default .data/prometheus-targets.json), and whatever
 * `${VAR}` the config uses (TEMPORAL_ADDRESS, CASCADE_TEMPORAL_DB, ...).
 */
import { join } from 'node:path';
import { REPO_ROOT } from '../common/paths.js';
import { createPrinter } from './lib/log-lines.js';
import { CascadeStack } from './lib/stack.js';

/** gsm8k-test-0 from the farm's replay data: the sample request gets a real recorded answer. */
const SAMPLE_PROMPT =
  "Janet’s ducks lay 16 eggs per day. She eats three for breakfast every morning and bakes muffins for her friends every day with four. She sells the remainder at the farmers' market daily for $2 per fresh duck egg. How much in dollars does she make every day at the farmers' market?";

const print = createPrinter();
const say = (text: string) => print('cascade', text);

function sampleCurl(apiBase: string, apiKeysEnv: string | undefined, env: NodeJS.ProcessEnv): string {
  // \u0027 instead of ' leaves no quote to escape in the shell.
  const body = JSON.stringify({ model: 'cascade', messages: [{ role: 'user', content: SAMPLE_PROMPT }] }).replace(/'/g, '\\u0027');
  // The key stays out of the output: the shell takes the first one from the variable.
  const auth = apiKeysEnv && env[apiKeysEnv]?.trim() ? ` -H "Authorization: Bearer \${${apiKeysEnv}%%,*}"` : '';
  return `curl -s ${apiBase}/chat/completions -H 'Content-Type: application/json'${auth} -d '${body}'`;
}

const isKnownError = (err: unknown) => err instanceof Error && ['StartupError', 'ConfigError', 'FarmConfigError'].includes(err.name);

async function main(): Promise<number> {
  let exitCode = 0;
  let finished!: () => void;
  const done = new Promise<void>((r) => (finished = r));
  const stack: CascadeStack = new CascadeStack({
    print,
    onFatal: (reason) => shutdown(`${reason}; stopping everything`, 1),
    prometheusTargets: join(REPO_ROOT, '.data', 'prometheus-targets.json'),
  });
  const shutdown = (reason: string, code: number) => {
    if (stack.stopped) return;
    exitCode = code;
    say(reason);
    void stack.stop().then(() => {
      say('Cascade stopped: every process it started has exited');
      finished();
    });
  };
  process.on('SIGINT', () => shutdown('stopping (SIGINT) ...', 0));
  process.on('SIGTERM', () => shutdown('stopping (SIGTERM) ...', 0));
  process.on('exit', () => stack.supervisor.killAllNow());

  try {
    await stack.start();
    const ui = stack.uiUrl;
    say(`Cascade ready: ${stack.apiBase}/v1 (${ui ? `Temporal UI: ${ui}` : `Temporal: ${stack.config.raw.temporal.address}`})`);
    if (stack.codecUrl)
      say(
        `Temporal UI decrypts payloads through the codec endpoint ${stack.codecUrl} (CLI: temporal --codec-endpoint ${stack.codecUrl} workflow show -w <id>)`,
      );
    say(`Prometheus metrics, one endpoint per process: ${[...stack.metricsUrls].map(([name, url]) => `${name} ${url}`).join(', ')}`);
    say(`Prometheus scrape targets (file_sd_configs, kept up to date): ${stack.prometheusTargetsFile}`);
    say('Try it:');
    process.stdout.write(`${sampleCurl(`${stack.apiBase}/v1`, stack.config.raw.server.api_keys_env, process.env)}\n`);
  } catch (err) {
    const message = isKnownError(err) ? (err as Error).message : String((err as Error).stack ?? err);
    shutdown(`start-up failed: ${message}\nstopping everything that was started ...`, 1);
  }
  await done;
  return exitCode;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(`[start] ${err instanceof Error ? err.stack : String(err)}`);
    process.exit(1);
  },
);
