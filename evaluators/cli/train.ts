/**
 * npm run train -- --data <file.jsonl> [--data <file2.jsonl> ...] [--name <prefix>] [--out-dir <dir>]
 *                  [--split train] [--no-encoder] [--max-tokens 32] [--prerouter-encoder] [--answer-prompt-embedding]
 *                  [--answer-label correct|not-worse]
 */
import { parseArgs } from 'node:util';
import { train } from '../train/train.js';

const { values } = parseArgs({
  options: {
    data: { type: 'string', multiple: true },
    name: { type: 'string' },
    'out-dir': { type: 'string' },
    split: { type: 'string', default: 'train' },
    'no-encoder': { type: 'boolean', default: false },
    'max-tokens': { type: 'string' },
    'prerouter-encoder': { type: 'boolean', default: false },
    'answer-prompt-embedding': { type: 'boolean', default: false },
    'answer-label': { type: 'string', default: 'correct' },
  },
});
if (!values.data?.length) {
  console.error(
    'usage: npm run train -- --data <file.jsonl> [--name <prefix>] [--out-dir <dir>] [--split train] [--no-encoder] [--max-tokens 32] [--prerouter-encoder] [--answer-prompt-embedding] [--answer-label correct|not-worse]',
  );
  process.exit(2);
}
if (values['answer-label'] !== 'not-worse' && values['answer-label'] !== 'correct') {
  console.error('--answer-label is not-worse or correct');
  process.exit(2);
}
if (values.name && values.data.length > 1) {
  console.error('--name applies to one --data file');
  process.exit(2);
}
for (const data of values.data) {
  await train({
    data,
    name: values.name,
    outDir: values['out-dir'],
    split: values.split,
    useEncoder: !values['no-encoder'],
    maxTokens: values['max-tokens'] ? Number(values['max-tokens']) : undefined,
    prerouterEncoder: values['prerouter-encoder'],
    answerPromptEmbedding: values['answer-prompt-embedding'],
    answerLabel: values['answer-label'] === 'not-worse' ? 'not-worse' : 'correct',
  });
}
