/**
 * npm run train -- --data <file.jsonl> [--data <file2.jsonl> ...] [--name <prefix>] [--out-dir <dir>]
 *                  [--split train] [--no-encoder] [--max-tokens 32] [--prerouter-encoder] [--answer-prompt-embedding]
 *                  [--answer-label correct|not-worse]
 */
import { exitWithUsage, parseCli } from '../../common/cli.js';
import { train } from '../train/train.js';

const USAGE = `usage: npm run train -- --data <file.jsonl> [--data <file2.jsonl> ...] [options]

Trains the answer-confidence heads and the pre-router on one split of each dataset.
  --data <file.jsonl>          RouteLLM-style dataset (repeatable)
  --name <prefix>              name of the written heads (one --data only)
  --out-dir <dir>              where the heads go (default evaluators/models)
  --split train                split to train on
  --no-encoder                 cheap features only (no MiniLM embedding)
  --max-tokens 32              tokens of the answer the encoder reads
  --prerouter-encoder          the pre-router also reads the prompt embedding
  --answer-prompt-embedding    the answer head also reads the prompt embedding
  --answer-label correct|not-worse   what the answer head learns to predict`;

const { values } = parseCli(USAGE, {
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
if (!values.data?.length) exitWithUsage(USAGE, 'train: --data is required');
if (values['answer-label'] !== 'not-worse' && values['answer-label'] !== 'correct') exitWithUsage(USAGE, 'train: --answer-label is not-worse or correct');
if (values.name && values.data.length > 1) exitWithUsage(USAGE, 'train: --name applies to one --data file');
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
