/**
 * bench:latency runs the real config from copies in a temporary folder (bench/lib/latency-stack.ts):
 * every path in them that is relative to config/ must point where the original does, or the farm
 * does not find the local model and the payload keys land beside the temporary folder.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { test } from 'node:test';
import { parse } from 'yaml';
import { writeScaledConfig, writeScaledFarm } from '../../bench/lib/latency-stack.js';
import { REPO_ROOT } from '../../config/load.js';

test('the scaled copies keep the local model file and the keys file where they belong', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cascade-latency-config-'));
  const farm = parse(readFileSync(writeScaledFarm(dir, 0.1).path, 'utf8'));
  const gguf = farm.models['smollm2-135m-instruct'].gguf as string;
  const fallback = /^\$\{CASCADE_LOCAL_GGUF:-(.+)\}$/.exec(gguf)?.[1];
  assert.ok(fallback && isAbsolute(fallback), gguf);
  assert.equal(fallback, join(REPO_ROOT, '.data/models/SmolLM2-135M-Instruct.Q4_1.gguf'));
  const config = parse(readFileSync(writeScaledConfig(dir, 0.1), 'utf8'));
  assert.equal(config.encryption.key_file, join(dir, 'encryption-keys'));
});
