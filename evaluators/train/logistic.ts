/**
 * Multi-output L2-regularised logistic regression, trained by full-batch Adam on standardised
 * inputs. Deterministic (zero initialisation, fixed iteration count). Labels may be missing (NaN)
 * per output: a pre-router row whose model has no label does not train that output.
 */
import type { DenseLayer } from '../onnx/write.js';

export interface LogisticModel {
  mean: number[];
  scale: number[];
  layers: [DenseLayer];
}

export interface FitOptions {
  l2: number;
  iterations?: number;
  learningRate?: number;
}

/** X: rows × dim (row-major), Y: rows × outputs (0, 1 or NaN). */
export function fitLogistic(X: Float64Array, rows: number, dim: number, Y: Float64Array, outputs: number, opts: FitOptions): LogisticModel {
  const mean = new Array<number>(dim).fill(0);
  const scale = new Array<number>(dim).fill(1);
  for (let i = 0; i < rows; i++) for (let d = 0; d < dim; d++) mean[d]! += X[i * dim + d]! / rows;
  for (let d = 0; d < dim; d++) {
    let v = 0;
    for (let i = 0; i < rows; i++) v += (X[i * dim + d]! - mean[d]!) ** 2;
    const sd = Math.sqrt(v / Math.max(1, rows));
    // A constant feature carries nothing; scale 0 keeps it out of the model entirely.
    scale[d] = sd > 1e-9 ? 1 / sd : 0;
  }
  const Z = new Float64Array(rows * dim);
  for (let i = 0; i < rows; i++) for (let d = 0; d < dim; d++) Z[i * dim + d] = (X[i * dim + d]! - mean[d]!) * scale[d]!;

  const W = new Float64Array(dim * outputs);
  const b = new Float64Array(outputs);
  // Start the bias at the base rate: fewer iterations to a good optimum.
  for (let o = 0; o < outputs; o++) {
    let pos = 0;
    let n = 0;
    for (let i = 0; i < rows; i++) {
      const y = Y[i * outputs + o]!;
      if (Number.isNaN(y)) continue;
      n++;
      pos += y;
    }
    const rate = Math.min(0.99, Math.max(0.01, n ? pos / n : 0.5));
    b[o] = Math.log(rate / (1 - rate));
  }
  const counts = new Float64Array(outputs);
  for (let i = 0; i < rows; i++) for (let o = 0; o < outputs; o++) if (!Number.isNaN(Y[i * outputs + o]!)) counts[o]!++;

  const iterations = opts.iterations ?? 300;
  const lr = opts.learningRate ?? 0.05;
  const gW = new Float64Array(dim * outputs);
  const gb = new Float64Array(outputs);
  const mW = new Float64Array(dim * outputs);
  const vW = new Float64Array(dim * outputs);
  const mb = new Float64Array(outputs);
  const vb = new Float64Array(outputs);
  const z = new Float64Array(outputs);
  const beta1 = 0.9;
  const beta2 = 0.999;
  for (let t = 1; t <= iterations; t++) {
    gW.fill(0);
    gb.fill(0);
    for (let i = 0; i < rows; i++) {
      const row = i * dim;
      for (let o = 0; o < outputs; o++) z[o] = b[o]!;
      for (let d = 0; d < dim; d++) {
        const x = Z[row + d]!;
        if (x === 0) continue;
        const w = d * outputs;
        for (let o = 0; o < outputs; o++) z[o]! += x * W[w + o]!;
      }
      for (let o = 0; o < outputs; o++) {
        const y = Y[i * outputs + o]!;
        if (Number.isNaN(y)) {
          z[o] = 0;
          continue;
        }
        z[o] = (1 / (1 + Math.exp(-z[o]!)) - y) / counts[o]!;
        gb[o]! += z[o]!;
      }
      for (let d = 0; d < dim; d++) {
        const x = Z[row + d]!;
        if (x === 0) continue;
        const w = d * outputs;
        for (let o = 0; o < outputs; o++) gW[w + o]! += x * z[o]!;
      }
    }
    const c1 = 1 - beta1 ** t;
    const c2 = 1 - beta2 ** t;
    for (let k = 0; k < W.length; k++) {
      const g = gW[k]! + opts.l2 * W[k]!;
      mW[k] = beta1 * mW[k]! + (1 - beta1) * g;
      vW[k] = beta2 * vW[k]! + (1 - beta2) * g * g;
      W[k]! -= (lr * (mW[k]! / c1)) / (Math.sqrt(vW[k]! / c2) + 1e-8);
    }
    for (let o = 0; o < outputs; o++) {
      const g = gb[o]!;
      mb[o] = beta1 * mb[o]! + (1 - beta1) * g;
      vb[o] = beta2 * vb[o]! + (1 - beta2) * g * g;
      b[o]! -= (lr * (mb[o]! / c1)) / (Math.sqrt(vb[o]! / c2) + 1e-8);
    }
  }
  return { mean, scale, layers: [{ inputs: dim, outputs, weights: Array.from(W), bias: Array.from(b) }] };
}
