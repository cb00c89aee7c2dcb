/** The answer-confidence evaluator: P(answer is good enough) from a trained ONNX head. */
import { loadHead, type HeadDeps } from './head.js';
import type { Evaluation, EvaluationInput, Evaluator } from './types.js';

export async function createAnswerModelEvaluator(modelFile: string, deps: HeadDeps): Promise<Evaluator> {
  const head = await loadHead(modelFile, deps);
  if (head.meta.kind !== 'answer-model') throw new Error(`${modelFile} is a ${head.meta.kind}, not an answer-model`);
  const features = head.meta.encoder ? `${head.meta.feature_version}+${head.meta.encoder.name}` : head.meta.feature_version;
  return {
    name: 'answer-model',
    async evaluate(input: EvaluationInput): Promise<Evaluation> {
      const [p] = await head.score(input);
      const confidence = Math.min(1, Math.max(0, p ?? 0));
      return { confidence, reasons: [`answer-model: P(good) ${confidence.toFixed(3)} (${features}, trained for ${head.meta.outputs[0]})`] };
    },
  };
}
