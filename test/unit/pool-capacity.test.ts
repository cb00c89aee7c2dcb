/**
 * The default stack's pool workers take no more calls than the farm pools behind them serve, and
 * a config that does is found (npm start prints it as a warning).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_CONFIG_PATH, loadConfig } from '../../config/load.js';
import { DEFAULT_FARM_CONFIG, loadFarmConfig } from '../../farm/index.js';
import { describeOvercommit, overcommittedPools } from '../../scripts/lib/pool-capacity.js';

async function defaultFarm() {
  const farm = await loadFarmConfig(DEFAULT_FARM_CONFIG);
  return Object.entries(farm.pools).map(([name, pool]) => ({ name, concurrency: pool.concurrency, baseUrl: `http://127.0.0.1:${pool.port}/v1` }));
}

describe('pool worker concurrency against the farm', () => {
  it('the default config takes no more calls per pool than config/farm.yaml serves', async () => {
    assert.deepEqual(overcommittedPools(loadConfig(DEFAULT_CONFIG_PATH, {}), await defaultFarm()), []);
  });

  it('finds a pool whose workers take more than its farm pool serves, counting every worker', async () => {
    const config = loadConfig(DEFAULT_CONFIG_PATH, {});
    config.raw.pools.cpu = { ...config.raw.pools.cpu!, concurrency: 8 };
    config.raw.pools['gpu-a'] = { ...config.raw.pools['gpu-a']!, concurrency: 4, workers: 3 };
    const found = overcommittedPools(config, await defaultFarm());
    assert.deepEqual(found, [
      { pool: 'cpu', takes: 8, endpoint: 'cpu', serves: 2 },
      { pool: 'gpu-a', takes: 12, endpoint: 'gpu-a', serves: 8 },
    ]);
    assert.match(describeOvercommit(found[0]!), /pool cpu takes 8 calls at a time .* farm pool cpu serves 2; .* set pools\.cpu\.concurrency to 2/);
  });
});
