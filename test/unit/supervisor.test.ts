/** The supervisor's restart rule: at once, unless the child keeps dying right after start-up. */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { restartDelayMs } from '../../scripts/lib/supervisor.js';

it('restarts at once after a crash, and backs off only from the second quick crash in a row', () => {
  assert.deepEqual([0, 1, 2, 3, 4, 5, 6, 7, 8].map(restartDelayMs), [0, 0, 1000, 2000, 4000, 8000, 16_000, 30_000, 30_000]);
});
