/**
 * CLI: `npm run farm [-- --config <path>] [--random-ports]`.
 * Prints `farm pool <name> ready <baseUrl>` per pool, then `farm ready`, on stdout; logs go to stderr.
 */
import { pino } from 'pino';
import { parseCli } from '../common/cli.js';
import { DEFAULT_FARM_CONFIG, loadFarmConfig, startFarm } from './index.js';

const USAGE = `usage: npm run farm [-- --config <farm.yaml>] [--random-ports]

Local OpenAI-compatible model pools replaying recorded answers, with faults on demand (docs/farm.md).
  --config <farm.yaml>   default config/farm.yaml
  --random-ports         every pool on a free port (printed as "farm pool <name> ready <url>")`;

async function run(): Promise<void> {
  const { values } = parseCli(USAGE, {
    options: {
      config: { type: 'string', default: DEFAULT_FARM_CONFIG },
      'random-ports': { type: 'boolean', default: false },
    },
  });
  const logger = pino({ name: 'farm', level: process.env.LOG_LEVEL ?? 'info' }, pino.destination(2));
  let farm;
  try {
    const config = await loadFarmConfig(values.config);
    farm = await startFarm(config, { logger, ...(values['random-ports'] ? { portOverride: 0 } : {}) });
  } catch (err) {
    process.stderr.write(`farm: start-up failed: ${(err as Error).message}\n`);
    process.exit(1);
  }
  for (const pool of farm.pools) process.stdout.write(`farm pool ${pool.name} ready ${pool.baseUrl}\n`);
  process.stdout.write('farm ready\n');
  const stop = async () => {
    await farm.close();
    process.exit(0);
  };
  process.once('SIGINT', () => void stop());
  process.once('SIGTERM', () => void stop());
}

void run();
