/**
 * The pre-router: from the prompt alone, P(step's answer will be good enough) for every ladder
 * model, so the policy can skip a step that would surely be rejected. Cheap prompt features (and
 * the prompt embedding when the head was trained with it) through one ONNX head.
 */
import { loadHead, type HeadDeps } from './head.js';

export interface Prerouter {
  /** Models the head predicts for, in output order. */
  readonly models: readonly string[];
  /** model name → P(good enough); models the head does not know are absent. */
  predict(messages: { role: string; content: string }[]): Promise<Record<string, number>>;
}

export async function loadPrerouter(modelFile: string, deps: HeadDeps = {}): Promise<Prerouter> {
  const head = await loadHead(modelFile, deps);
  if (head.meta.kind !== 'prerouter') throw new Error(`${modelFile} is a ${head.meta.kind}, not a prerouter`);
  return {
    models: head.meta.outputs,
    async predict(messages) {
      const p = await head.score({ messages, answer: '', model: '', step: 0 });
      return Object.fromEntries(head.meta.outputs.map((m, i) => [m, p[i] ?? 0]));
    },
  };
}
