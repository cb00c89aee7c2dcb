/**
 * The pure parts of document jobs: chunking, the task's policy, label matching, merging
 * extractions, webhook address checks.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { chunkText } from '../../activities/document-chunking.js';
import { matchLabel, mergeExtractions } from '../../activities/document.js';
import { checkWebhookUrl, forbiddenAddress } from '../../activities/document-webhook.js';
import { labelSchema, policyForTask, unitParams } from '../../workflows/document-tasks.js';
import type { PolicySpec } from '../../common/types.js';
import { documentText } from './helpers.js';

describe('chunkText', () => {
  const text = documentText(40, 'unit');

  it('chunks stay within the budget, cover the text in order, and never cut a word', () => {
    const chunks = chunkText(text, { chunkTokens: 100, overlapTokens: 10 });
    assert.ok(chunks.length > 5);
    for (const c of chunks) assert.ok(c.length <= 400, `chunk of ${c.length} chars`);
    const words = new Set(text.split(/\s+/));
    for (const c of chunks) for (const w of c.split(/\s+/)) assert.ok(words.has(w), `"${w}" is a cut word`);
    // Every sentence of the text is in some chunk, and chunks follow the text's order.
    let from = 0;
    for (const sentence of text.split(/(?<=\.)\s+/)) {
      const at = chunks.findIndex((c, i) => i >= from && c.includes(sentence));
      assert.ok(at >= 0, `missing: ${sentence}`);
      from = at;
    }
  });

  it('each chunk starts with the tail of the one before (the overlap)', () => {
    const chunks = chunkText(text, { chunkTokens: 100, overlapTokens: 20 });
    for (let i = 1; i < chunks.length; i++) {
      const [prev, cur] = [chunks[i - 1]!, chunks[i]!];
      let shared = 0;
      for (let k = 1; k <= Math.min(prev.length, cur.length); k++) if (prev.endsWith(cur.slice(0, k))) shared = k;
      assert.ok(shared >= 20 && shared <= 80, `chunk ${i + 1} repeats ${shared} characters of chunk ${i}`);
    }
    const none = chunkText(text, { chunkTokens: 100, overlapTokens: 0 });
    assert.ok(
      none.every((c, i) => i === 0 || !none[i - 1]!.endsWith(c.slice(0, 10))),
      'no overlap asked, none given',
    );
  });

  it('a word longer than a chunk is cut; empty text has no chunks', () => {
    assert.deepEqual(chunkText('x'.repeat(100), { chunkTokens: 16, overlapTokens: 0 }), ['x'.repeat(64), 'x'.repeat(36)]);
    assert.deepEqual(chunkText('  \n\n ', { chunkTokens: 16, overlapTokens: 2 }), []);
  });
});

describe('the policy of a task', () => {
  const policy: PolicySpec = {
    name: 'p',
    steps: [
      { model: 'small', evaluator: { type: 'logprob' }, threshold: 0.6 },
      { model: 'mid', evaluator: { type: 'min', of: [{ type: 'validators' }, { type: 'arithmetic' }] }, threshold: 0.5 },
      { model: 'large', evaluator: { type: 'none' }, threshold: 0 },
    ],
    evaluate_last_step: false,
    deadline_ms: 1000,
    max_cost_usd: 1,
  };

  it('extract gates every step on validators, keeping its own evaluator', () => {
    const p = policyForTask('extract', policy);
    assert.deepEqual(p.steps[0]!.evaluator, { type: 'min', of: [{ type: 'validators' }, { type: 'logprob' }] });
    assert.deepEqual(p.steps[1], policy.steps[1]); // already gated
    assert.deepEqual(p.steps[2]!.evaluator, { type: 'validators' });
    assert.equal(policyForTask('summarize', policy), policy);
    assert.deepEqual(policyForTask('classify', policy), p, 'classify answers JSON too: the same gate');
  });

  it('a classify chunk asks for {"label": <one of the labels>} as structured output', () => {
    const params = unitParams('classify', { labels: ['bug', 'feature'] }, { kind: 'map' }, 1, 3, 'text');
    assert.deepEqual(params.response_format, {
      type: 'json_schema',
      json_schema: { name: 'classification', schema: labelSchema(['bug', 'feature']), strict: true },
    });
    assert.deepEqual(labelSchema(['bug', 'feature']), {
      type: 'object',
      properties: { label: { type: 'string', enum: ['bug', 'feature'] } },
      required: ['label'],
      additionalProperties: false,
    });
  });

  it('an extract chunk asks for JSON matching the schema', () => {
    const params = unitParams('extract', { schema: { type: 'object' } }, { kind: 'map' }, 0, 3, 'text');
    assert.deepEqual(params.response_format, { type: 'json_schema', json_schema: { name: 'extraction', schema: { type: 'object' }, strict: true } });
    assert.match(params.messages[1]!.content, /^Part 1 of 3:/);
  });
});

describe('results', () => {
  it('matchLabel finds the first allowed label named as a whole word', () => {
    assert.equal(matchLabel('This is a Bug report, not a feature.', ['feature', 'bug']), 'bug');
    assert.equal(matchLabel('debugging', ['bug']), null);
    assert.equal(matchLabel('Label: question', ['bug', 'question']), 'question');
  });

  it('matchLabel reads the label of a {"label": …} answer (not the key "label" as a word)', () => {
    assert.equal(matchLabel('{"label": "feature"}', ['label', 'bug', 'feature']), 'feature');
    assert.equal(matchLabel('{"label": "other"}', ['bug', 'feature']), null);
  });

  it('mergeExtractions concatenates arrays and keeps the first value of other keys', () => {
    assert.deepEqual(mergeExtractions([{ names: ['a'], year: null }, { names: ['b', 'c'], year: 2024 }, { year: 2025 }]), {
      names: ['a', 'b', 'c'],
      year: 2024,
    });
    assert.deepEqual(mergeExtractions([[1], [2, 3]]), [1, 2, 3]);
    assert.equal(mergeExtractions([]), null);
  });
});

describe('webhook addresses', () => {
  it('link-local and metadata addresses are forbidden, loopback only when allowed', () => {
    for (const a of ['169.254.169.254', '169.254.1.1', 'fe80::1', 'fd00:ec2::254', '::ffff:169.254.169.254', '0.0.0.0', '100.100.100.200'])
      assert.ok(forbiddenAddress(a), a);
    for (const a of ['127.0.0.1', '10.0.0.1', '::1', '93.184.216.34']) assert.ok(!forbiddenAddress(a), a);
    assert.equal(checkWebhookUrl('https://hooks.example.com/x', ['*.example.com']).hostname, 'hooks.example.com');
    assert.throws(() => checkWebhookUrl('https://example.com/x', ['*.example.com']), /not allowed/);
    assert.throws(() => checkWebhookUrl('http://[fe80::1]/x', ['fe80::1']), /link-local/);
    assert.throws(() => checkWebhookUrl('http://user:pw@127.0.0.1/x', ['127.0.0.1']), /credentials/);
  });
});
