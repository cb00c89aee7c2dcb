/** The config file: every shipped config validates; mistakes are reported with the field's path. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, DEFAULT_CONFIG_PATH, loadConfig, REPO_ROOT, resolveTarget } from '../../config/load.js';

const examples = readdirSync(join(REPO_ROOT, 'config', 'examples')).filter((f) => f.endsWith('.yaml'));

function writeConfig(text: string): string {
  const file = join(mkdtempSync(join(tmpdir(), 'cascade-config-')), 'cascade.yaml');
  writeFileSync(file, text);
  return file;
}

const minimal = (models: string, policies: string) => `
pools: { p: {} }
models:
${models}
policies:
${policies}
default_policy: d
`;

describe('config', () => {
  it('the default config and every example validate', () => {
    const config = loadConfig(DEFAULT_CONFIG_PATH, {});
    assert.ok(config.policies.has('default'));
    assert.equal(config.models.get('mistralai/Mixtral-8x7B-Instruct-v0.1')!.deployments.length, 2);
    assert.ok(examples.length >= 4, 'OpenAI, vLLM, Ollama and llama.cpp examples');
    for (const file of examples) assert.doesNotThrow(() => loadConfig(join(REPO_ROOT, 'config', 'examples', file), {}), file);
  });

  it('takes ${VAR:-default} from the environment', () => {
    const config = loadConfig(DEFAULT_CONFIG_PATH, { FARM_CPU_PORT: '9999' });
    assert.equal(config.deployments.get('mistralai/Mixtral-8x7B-Instruct-v0.1@cpu')!.baseUrl, 'http://127.0.0.1:9999/v1');
  });

  it('names the field of a wrong type', () => {
    const file = writeConfig(
      minimal(
        '  m: { input_usd_per_1m: "cheap", output_usd_per_1m: 1, context_window: 10, deployments: [{ pool: p, base_url: "http://x/v1" }] }',
        '  d: { steps: [{ model: m }] }',
      ),
    );
    assert.throws(
      () => loadConfig(file, {}),
      (e: unknown) => e instanceof ConfigError && /models\.m\.input_usd_per_1m/.test(e.message) && e.message.includes(file),
    );
  });

  it('names an unknown pool, model or default policy', () => {
    const file = writeConfig(
      minimal(
        '  m: { input_usd_per_1m: 1, output_usd_per_1m: 1, context_window: 10, deployments: [{ pool: nope, base_url: "http://x/v1" }] }',
        '  d: { steps: [{ model: ghost }] }',
      ),
    );
    assert.throws(
      () => loadConfig(file, {}),
      (e: unknown) => {
        const msg = (e as Error).message;
        return /deployments\[0\]\.pool: unknown pool "nope"/.test(msg) && /steps\[0\]\.model: unknown model "ghost"/.test(msg);
      },
    );
  });

  it('names an unknown evaluator type', () => {
    const file = writeConfig(
      minimal(
        '  m: { input_usd_per_1m: 1, output_usd_per_1m: 1, context_window: 10, deployments: [{ pool: p, base_url: "http://x/v1" }] }',
        '  d: { steps: [{ model: m, evaluator: { type: vibes } }] }',
      ),
    );
    assert.throws(
      () => loadConfig(file, {}),
      (e: unknown) => /policies\.d\.steps\[0\]\.evaluator/.test((e as Error).message),
    );
  });

  it('names hedges and pool preferences that cannot work', () => {
    const file = writeConfig(
      minimal(
        '  m: { input_usd_per_1m: 1, output_usd_per_1m: 1, context_window: 10, deployments: [{ pool: p, base_url: "http://x/v1" }] }',
        '  d: { steps: [{ model: m, hedge: { below_p: 0.4 }, pools: [fast] }, { model: m, hedge: { after_ms: 100 } }] }',
      ),
    );
    assert.throws(
      () => loadConfig(file, {}),
      (e: unknown) => {
        const msg = (e as Error).message;
        return (
          /steps\[0\]\.pools: unknown pool "fast"/.test(msg) &&
          /steps\[0\]\.hedge\.below_p: needs the policy's prerouter/.test(msg) &&
          /steps\[1\]\.hedge: the last step has no next step/.test(msg)
        );
      },
    );
  });

  it('ships the speed, quality and cost presets', () => {
    const config = loadConfig(DEFAULT_CONFIG_PATH, {});
    for (const preset of ['speed', 'quality', 'cost']) assert.ok(resolveTarget(config, `cascade:${preset}`), preset);
    assert.deepEqual(config.policies.get('speed')!.steps[0]!.pools, ['gpu-a']);
  });

  it('a missing file or invalid YAML is a clear error', () => {
    assert.throws(() => loadConfig('/nonexistent/cascade.yaml', {}), /cannot read config \/nonexistent\/cascade.yaml: ENOENT/);
    assert.throws(() => loadConfig(writeConfig('models: [unclosed'), {}), /not valid YAML/);
  });

  it('resolves `cascade`, `cascade:<policy>`, model names and aliases', () => {
    const config = loadConfig(DEFAULT_CONFIG_PATH, {});
    assert.equal(resolveTarget(config, 'cascade')!.policy.name, 'default');
    assert.equal(resolveTarget(config, 'cascade:simulated')!.policy.name, 'simulated');
    assert.equal(resolveTarget(config, 'mixtral')!.policy.steps[0]!.model, 'mistralai/Mixtral-8x7B-Instruct-v0.1');
    assert.equal(resolveTarget(config, 'cascade:nope'), null);
    assert.equal(resolveTarget(config, 'nope'), null);
  });
});
