/**
 * A minimal ONNX protobuf encoder: just what a one-node graph (MatMul) needs, to measure
 * onnxruntime-web on the same shapes as our kernels without shipping model files.
 *
 * Protobuf wire format: each field is a key `(field_number << 3) | wire_type` (varint) then its
 * value — wire type 0 = varint (ints, enums), 2 = length-delimited (strings, bytes, messages).
 * Field numbers are those of onnx.proto (ONNX 1.x):
 *
 *   ModelProto        ir_version 1, producer_name 2, graph 7, opset_import 8
 *   OperatorSetIdProto domain 1, version 2
 *   GraphProto        node 1, name 2, initializer 5, input 11, output 12
 *   NodeProto         input 1, output 2, name 3, op_type 4
 *   ValueInfoProto    name 1, type 2
 *   TypeProto         tensor_type 1 → TypeProto.Tensor: elem_type 1, shape 2
 *   TensorShapeProto  dim 1 → Dimension: dim_value 1, dim_param 2
 *   TensorProto       dims 1, data_type 2, name 8, raw_data 9 (little-endian element bytes)
 */

/** ONNX TensorProto.DataType values used here. */
export enum OnnxDataType {
  Float = 1,
  Float16 = 10,
}

const WIRE_VARINT = 0;
const WIRE_LEN = 2;

/** Appends protobuf fields to a growing byte buffer. */
export class ProtoWriter {
  private buf = new Uint8Array(64);
  private len = 0;

  private ensure(extra: number): void {
    if (this.len + extra <= this.buf.length) return;
    let n = this.buf.length * 2;
    while (n < this.len + extra) n *= 2;
    const next = new Uint8Array(n);
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
  }

  /** A varint of a non-negative safe integer (up to 2⁵³ − 1). */
  varint(value: number): this {
    if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`protobuf varint: ${value} is not a non-negative safe integer`);
    this.ensure(10);
    let v = value;
    while (v >= 0x80) {
      this.buf[this.len++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    this.buf[this.len++] = v;
    return this;
  }

  private key(field: number, wire: number): void {
    this.varint(field * 8 + wire);
  }

  /** Field of wire type 0. */
  uint(field: number, value: number): this {
    this.key(field, WIRE_VARINT);
    return this.varint(value);
  }

  /** Field of wire type 2 holding raw bytes. */
  bytes(field: number, data: Uint8Array): this {
    this.key(field, WIRE_LEN);
    this.varint(data.length);
    this.ensure(data.length);
    this.buf.set(data, this.len);
    this.len += data.length;
    return this;
  }

  /** Field of wire type 2 holding UTF-8 text. */
  string(field: number, text: string): this {
    return this.bytes(field, new TextEncoder().encode(text));
  }

  /** Field of wire type 2 holding an embedded message. */
  message(field: number, build: (w: ProtoWriter) => void): this {
    const inner = new ProtoWriter();
    build(inner);
    return this.bytes(field, inner.finish());
  }

  finish(): Uint8Array {
    return this.buf.slice(0, this.len);
  }
}

/** A graph input or output: name, element type, dims (a string is a symbolic dimension). */
export interface OnnxValueInfo {
  name: string;
  type: OnnxDataType;
  dims: readonly (number | string)[];
}

/** A constant tensor of the graph (weights). `data` holds the little-endian element bytes. */
export interface OnnxInitializer {
  name: string;
  type: OnnxDataType;
  dims: readonly number[];
  data: Uint8Array;
}

export interface OnnxNode {
  opType: string;
  inputs: readonly string[];
  outputs: readonly string[];
  name?: string;
}

export interface OnnxGraph {
  name: string;
  nodes: readonly OnnxNode[];
  inputs: readonly OnnxValueInfo[];
  outputs: readonly OnnxValueInfo[];
  initializers?: readonly OnnxInitializer[];
  /** Default opset 17 (domain ""). */
  opset?: number;
  /** Default 8 (ONNX 1.10+, opset ≤ 17 runtimes accept it). */
  irVersion?: number;
}

function writeValueInfo(w: ProtoWriter, v: OnnxValueInfo): void {
  w.string(1, v.name);
  w.message(2, (type) =>
    type.message(1, (tensor) => {
      tensor.uint(1, v.type);
      tensor.message(2, (shape) => {
        for (const d of v.dims) shape.message(1, (dim) => (typeof d === 'number' ? dim.uint(1, d) : dim.string(2, d)));
      });
    }),
  );
}

function writeTensor(w: ProtoWriter, t: OnnxInitializer): void {
  for (const d of t.dims) w.uint(1, d);
  w.uint(2, t.type);
  w.string(8, t.name);
  w.bytes(9, t.data);
}

/**
 * Encodes a ModelProto.
 *
 * @example
 * const bytes = encodeOnnxModel({ name: 'g', nodes: [{ opType: 'MatMul', inputs: ['a', 'b'], outputs: ['y'] }], inputs, outputs });
 */
export function encodeOnnxModel(g: OnnxGraph): Uint8Array {
  const w = new ProtoWriter();
  w.uint(1, g.irVersion ?? 8);
  w.string(2, 'vlmesh-bench');
  w.message(7, (graph) => {
    g.nodes.forEach((n, i) => {
      graph.message(1, (node) => {
        for (const x of n.inputs) node.string(1, x);
        for (const y of n.outputs) node.string(2, y);
        node.string(3, n.name ?? `${n.opType}_${i}`);
        node.string(4, n.opType);
      });
    });
    graph.string(2, g.name);
    for (const t of g.initializers ?? []) graph.message(5, (tw) => writeTensor(tw, t));
    for (const v of g.inputs) graph.message(11, (vw) => writeValueInfo(vw, v));
    for (const v of g.outputs) graph.message(12, (vw) => writeValueInfo(vw, v));
  });
  w.message(8, (op) => {
    op.string(1, '');
    op.uint(2, g.opset ?? 17);
  });
  return w.finish();
}

/**
 * The model `y[M, N] = a[M, K] · b[K, N]` with `b` a float32 initializer (weights, as in a real
 * model: uploaded once) and `a` the only input.
 */
export function matmulModel(M: number, K: number, N: number, b: Float32Array): Uint8Array {
  if (b.length !== K * N) throw new RangeError(`matmulModel: b has ${b.length} values, [${K}, ${N}] needs ${K * N}`);
  return encodeOnnxModel({
    name: 'matmul',
    nodes: [{ opType: 'MatMul', inputs: ['a', 'b'], outputs: ['y'] }],
    inputs: [{ name: 'a', type: OnnxDataType.Float, dims: [M, K] }],
    outputs: [{ name: 'y', type: OnnxDataType.Float, dims: [M, N] }],
    initializers: [{ name: 'b', type: OnnxDataType.Float, dims: [K, N], data: new Uint8Array(b.buffer, b.byteOffset, b.byteLength) }],
  });
}
