/**
 * A minimal ONNX writer for the small heads `npm run train` produces: standardise → (MatMul, Add)
 * layers with Relu between them → Sigmoid. Writes the protobuf wire format directly (the handful of
 * ModelProto fields these graphs need), so no protobuf library or Python is involved.
 * Field numbers: onnx/onnx.proto (IR version 8, default opset 13).
 */

// ---- protobuf wire format ----
class Writer {
  private chunks: Uint8Array[] = [];
  private varint(v: number | bigint): void {
    let n = BigInt(v);
    if (n < 0n) n += 1n << 64n; // int64 two's complement
    const out: number[] = [];
    do {
      let byte = Number(n & 0x7fn);
      n >>= 7n;
      if (n > 0n) byte |= 0x80;
      out.push(byte);
    } while (n > 0n);
    this.chunks.push(Uint8Array.from(out));
  }
  private key(field: number, wire: number): void {
    this.varint((field << 3) | wire);
  }
  int(field: number, v: number | bigint): this {
    this.key(field, 0);
    this.varint(v);
    return this;
  }
  float(field: number, v: number): this {
    this.key(field, 5);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, v, true);
    this.chunks.push(b);
    return this;
  }
  bytes(field: number, b: Uint8Array): this {
    this.key(field, 2);
    this.varint(b.length);
    this.chunks.push(b);
    return this;
  }
  string(field: number, s: string): this {
    return this.bytes(field, new TextEncoder().encode(s));
  }
  message(field: number, m: Writer): this {
    return this.bytes(field, m.finish());
  }
  finish(): Uint8Array {
    const total = this.chunks.reduce((s, c) => s + c.length, 0);
    const out = new Uint8Array(total);
    let off = 0;
    for (const c of this.chunks) {
      out.set(c, off);
      off += c.length;
    }
    return out;
  }
}

const FLOAT = 1; // TensorProto.DataType.FLOAT

function tensor(name: string, dims: number[], values: ArrayLike<number>): Writer {
  const t = new Writer();
  for (const d of dims) t.int(1, d);
  t.int(2, FLOAT).string(8, name);
  const raw = new Float32Array(values.length);
  for (let i = 0; i < values.length; i++) raw[i] = values[i]!;
  return t.bytes(9, new Uint8Array(raw.buffer));
}

function valueInfo(name: string, dims: (number | string)[]): Writer {
  const shape = new Writer();
  for (const d of dims) shape.message(1, typeof d === 'number' ? new Writer().int(1, d) : new Writer().string(2, d));
  const tensorType = new Writer().int(1, FLOAT).message(2, shape);
  return new Writer().string(1, name).message(2, new Writer().message(1, tensorType));
}

function node(op: string, inputs: string[], outputs: string[], name: string): Writer {
  const n = new Writer();
  for (const i of inputs) n.string(1, i);
  for (const o of outputs) n.string(2, o);
  return n.string(3, name).string(4, op);
}

// ---- the head ----
export interface DenseLayer {
  /** Row-major [inputs × outputs]. */
  weights: number[];
  bias: number[];
  inputs: number;
  outputs: number;
}

export interface HeadSpec {
  inputName: string;
  outputName: string;
  /** x' = (x - mean) * scale, applied before the first layer. */
  mean: number[];
  scale: number[];
  /** Relu between layers, Sigmoid after the last. */
  layers: DenseLayer[];
  metadata?: Record<string, string>;
}

export function headToOnnx(spec: HeadSpec): Uint8Array {
  const dim = spec.mean.length;
  const graph = new Writer();
  const nodes: Writer[] = [];
  const inits: Writer[] = [tensor('mean', [dim], spec.mean), tensor('scale', [dim], spec.scale)];
  nodes.push(node('Sub', [spec.inputName, 'mean'], ['centred'], 'standardise_sub'));
  nodes.push(node('Mul', ['centred', 'scale'], ['h0'], 'standardise_mul'));
  let current = 'h0';
  spec.layers.forEach((layer, i) => {
    inits.push(tensor(`W${i}`, [layer.inputs, layer.outputs], layer.weights), tensor(`b${i}`, [layer.outputs], layer.bias));
    nodes.push(node('MatMul', [current, `W${i}`], [`mm${i}`], `matmul${i}`));
    const last = i === spec.layers.length - 1;
    nodes.push(node('Add', [`mm${i}`, `b${i}`], [last ? 'logit' : `pre${i}`], `add${i}`));
    if (!last) {
      nodes.push(node('Relu', [`pre${i}`], [`h${i + 1}`], `relu${i}`));
      current = `h${i + 1}`;
    }
  });
  nodes.push(node('Sigmoid', ['logit'], [spec.outputName], 'sigmoid'));
  for (const n of nodes) graph.message(1, n);
  graph.string(2, 'cascade_head');
  for (const t of inits) graph.message(5, t);
  graph.message(11, valueInfo(spec.inputName, ['batch', dim]));
  const outDim = spec.layers[spec.layers.length - 1]!.outputs;
  graph.message(12, valueInfo(spec.outputName, ['batch', outDim]));

  const model = new Writer().int(1, 8).string(2, 'cascade-train').string(3, '1');
  model.message(7, graph);
  model.message(8, new Writer().string(1, '').int(2, 13));
  for (const [k, v] of Object.entries(spec.metadata ?? {})) model.message(14, new Writer().string(1, k).string(2, v));
  return model.finish();
}

/** The same computation in TypeScript (float64): what training uses and the tests compare with. */
export function headForward(spec: Omit<HeadSpec, 'inputName' | 'outputName' | 'metadata'>, x: ArrayLike<number>): number[] {
  let h = Array.from({ length: spec.mean.length }, (_, i) => (x[i]! - spec.mean[i]!) * spec.scale[i]!);
  spec.layers.forEach((layer, li) => {
    const out = layer.bias.slice();
    for (let i = 0; i < layer.inputs; i++) {
      const v = h[i]!;
      if (v === 0) continue;
      const row = i * layer.outputs;
      for (let o = 0; o < layer.outputs; o++) out[o]! += v * layer.weights[row + o]!;
    }
    h = li === spec.layers.length - 1 ? out.map((z) => 1 / (1 + Math.exp(-z))) : out.map((z) => Math.max(0, z));
  });
  return h;
}
