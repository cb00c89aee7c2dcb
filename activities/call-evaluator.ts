/**
 * Scores a step's answer with its evaluator, each evaluator built once per process (ONNX sessions
 * are loaded once and shared). The router worker's `evaluate` local activity uses it, and the
 * model-call activity evaluates an answer it has just produced when the workflow asks it to
 * (GenerateInput.evaluate), saving the step's evaluate round trip. Pool worker processes are built
 * without model files (`modelFiles: false`): for an evaluator that needs one they answer null and
 * the workflow evaluates with the router as before, so no pool worker ever loads an ONNX model.
 */
import type { Logger } from 'pino';
import type { EvaluatorSpec } from '../common/types.js';
import { evaluationInputFromCall } from '../evaluators/from-call.js';
import { createEvaluator, type Evaluation } from '../evaluators/index.js';
import { usesModelFile, type EvaluatorSpec as ParsedEvaluatorSpec } from '../evaluators/spec.js';
import type { EvaluateCall } from '../workflows/cascade-effects.js';

export type CallEvaluator = (call: EvaluateCall) => Promise<Evaluation | null>;

export function createCallEvaluator({ modelsDir, logger, modelFiles }: { modelsDir: string; logger: Logger; modelFiles: boolean }): CallEvaluator {
  const evaluators = new Map<string, ReturnType<typeof createEvaluator>>();
  const evaluatorFor = (spec: EvaluatorSpec) => {
    const key = JSON.stringify(spec);
    let e = evaluators.get(key);
    if (!e) {
      e = createEvaluator(spec as ParsedEvaluatorSpec, { modelsDir, logger });
      e.catch(() => evaluators.delete(key)); // a failed load is retried by the next request
      evaluators.set(key, e);
    }
    return e;
  };
  return async (call) => {
    if (!modelFiles && usesModelFile(call.spec as ParsedEvaluatorSpec)) return null;
    const evaluator = await evaluatorFor(call.spec);
    const result = await evaluator.evaluate(evaluationInputFromCall(call));
    return { confidence: Math.min(1, Math.max(0, result.confidence)), reasons: result.reasons };
  };
}
