/**
 * Every script with options prints its usage on --help (exit 0) and on a wrong option or a missing
 * required one (exit 2, stderr), through the one parser in common/cli.ts; never a stack trace.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { REPO_ROOT } from '../../config/load.js';

function run(script: string, args: string[]) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', script, ...args], { cwd: REPO_ROOT, encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

// A few of them (each spawn loads the script's imports); all use parseCli.
const SCRIPTS: [string, string][] = [
  ['evaluators/cli/calibrate.ts', 'npm run calibrate'],
  ['bench/overhead.ts', 'npm run bench:overhead'],
  ['farm/main.ts', 'npm run farm'],
  ['scripts/doc.ts', 'npm run doc'],
];

describe('command-line usage', () => {
  for (const [script, command] of SCRIPTS) {
    it(`${command}: --help prints the usage and exits 0; a wrong option exits 2 with the problem and the usage`, () => {
      const help = run(script, ['--help']);
      assert.equal(help.code, 0, help.stderr);
      assert.ok(help.stdout.startsWith('usage:'), help.stdout);
      assert.ok(help.stdout.includes(command), help.stdout);
      const wrong = run(script, ['--no-such-option']);
      assert.equal(wrong.code, 2, wrong.stderr);
      assert.match(wrong.stderr, /^Unknown option '--no-such-option'/);
      assert.ok(wrong.stderr.includes(`usage:`) && wrong.stderr.includes(command), wrong.stderr);
      assert.doesNotMatch(wrong.stderr, /\n\s+at /, 'no stack trace');
      assert.equal(wrong.stdout, '');
    });
  }

  it('a missing required option or value is exit 2 with what is missing', () => {
    const noData = run('evaluators/cli/calibrate.ts', ['--target', '0.95']);
    assert.equal(noData.code, 2);
    assert.match(noData.stderr, /^calibrate: --data is required\n/);
    const noValue = run('bench/routing.ts', ['--data']);
    assert.equal(noValue.code, 2);
    assert.match(noValue.stderr, /--data <value>' argument missing/);
    const both = run('evaluators/cli/calibrate.ts', ['--data', 'x.jsonl', '--target', '0.9', '--max-cost', '0.01']);
    assert.equal(both.code, 2);
    assert.match(both.stderr, /give one of --target and --max-cost/);
  });
});
