/**
 * The minimal ONNX encoder of `vlmesh bench` (shared/bench/onnx.ts): protobuf varints and keys
 * against hand-computed bytes, the ModelProto of a MatMul read back field by field with an
 * independent wire-format reader (field numbers of onnx.proto), and the encoded model run by
 * onnxruntime-web itself (its wasm backend in Node) against a plain matmul.
 */
import { describe, expect, it } from 'vitest';
import { encodeOnnxModel, matmulModel, OnnxDataType, ProtoWriter } from '../../shared/bench/onnx.ts';

/** One decoded protobuf field: varint value or length-delimited payload. */
interface Field {
  field: number;
  wire: number;
  value: number;
  bytes: Uint8Array;
}

/** An independent protobuf reader (varint and length-delimited fields only). */
function readFields(buf: Uint8Array): Field[] {
  const out: Field[] = [];
  let i = 0;
  const varint = () => {
    let v = 0;
    let mul = 1;
    for (;;) {
      const b = buf[i++];
      if (b === undefined) throw new Error('truncated varint');
      v += (b & 0x7f) * mul;
      mul *= 128;
      if (b < 0x80) return v;
    }
  };
  while (i < buf.length) {
    const key = varint();
    const field = Math.floor(key / 8);
    const wire = key % 8;
    if (wire === 0) out.push({ field, wire, value: varint(), bytes: new Uint8Array() });
    else if (wire === 2) {
      const n = varint();
      out.push({ field, wire, value: n, bytes: buf.subarray(i, i + n) });
      i += n;
    } else throw new Error(`unexpected wire type ${wire}`);
  }
  return out;
}

const text = (f: Field) => new TextDecoder().decode(f.bytes);
const all = (fs: Field[], n: number) => fs.filter((f) => f.field === n);
const one = (fs: Field[], n: number) => {
  const hits = all(fs, n);
  expect(hits, `field ${n}`).toHaveLength(1);
  return hits[0];
};

describe('ProtoWriter', () => {
  it('encodes varints as protobuf does', () => {
    const enc = (v: number) => Array.from(new ProtoWriter().varint(v).finish());
    expect(enc(0)).toEqual([0x00]);
    expect(enc(1)).toEqual([0x01]);
    expect(enc(127)).toEqual([0x7f]);
    expect(enc(128)).toEqual([0x80, 0x01]);
    expect(enc(300)).toEqual([0xac, 0x02]);
    expect(enc(2 ** 32)).toEqual([0x80, 0x80, 0x80, 0x80, 0x10]);
    expect(() => new ProtoWriter().varint(-1)).toThrow(RangeError);
    expect(() => new ProtoWriter().varint(1.5)).toThrow(RangeError);
  });

  it('writes keys, strings and nested messages', () => {
    // field 1 varint 8 → key 0x08; field 2 "ab" → key 0x12, length 2; field 7 message {1: 150}.
    const w = new ProtoWriter().uint(1, 8).string(2, 'ab').message(7, (m) => m.uint(1, 150));
    expect(Array.from(w.finish())).toEqual([0x08, 0x08, 0x12, 0x02, 0x61, 0x62, 0x3a, 0x03, 0x08, 0x96, 0x01]);
  });

  it('grows past its initial buffer', () => {
    const big = new Uint8Array(1000).map((_, i) => i & 0xff);
    const bytes = new ProtoWriter().bytes(9, big).finish();
    expect(Array.from(bytes.subarray(0, 3))).toEqual([0x4a, 0xe8, 0x07]); // key 9·8+2, length 1000
    expect(bytes.subarray(3)).toEqual(big);
  });
});

describe('encodeOnnxModel', () => {
  it('lays out a MatMul ModelProto with onnx.proto field numbers', () => {
    const [M, K, N] = [3, 4, 5];
    const b = Float32Array.from({ length: K * N }, (_, i) => i);
    const model = readFields(matmulModel(M, K, N, b));
    expect(one(model, 1).value).toBe(8); // ir_version
    expect(text(one(model, 2))).toBe('vlmesh-bench'); // producer_name
    const opset = readFields(one(model, 8).bytes); // opset_import
    expect(text(one(opset, 1))).toBe('');
    expect(one(opset, 2).value).toBe(17);

    const graph = readFields(one(model, 7).bytes);
    expect(text(one(graph, 2))).toBe('matmul');
    const node = readFields(one(graph, 1).bytes);
    expect(all(node, 1).map(text)).toEqual(['a', 'b']); // inputs
    expect(all(node, 2).map(text)).toEqual(['y']); // outputs
    expect(text(one(node, 4))).toBe('MatMul'); // op_type

    const init = readFields(one(graph, 5).bytes); // initializer: TensorProto
    expect(all(init, 1).map((f) => f.value)).toEqual([K, N]); // dims
    expect(one(init, 2).value).toBe(OnnxDataType.Float); // data_type = 1
    expect(text(one(init, 8))).toBe('b');
    const raw = one(init, 9).bytes;
    expect(raw.length).toBe(K * N * 4);
    expect(new Float32Array(raw.slice().buffer)).toEqual(b);

    const input = readFields(one(graph, 11).bytes); // ValueInfoProto
    expect(text(one(input, 1))).toBe('a');
    const tensorType = readFields(one(readFields(one(input, 2).bytes), 1).bytes);
    expect(one(tensorType, 1).value).toBe(OnnxDataType.Float); // elem_type
    const dims = all(readFields(one(tensorType, 2).bytes), 1).map((d) => one(readFields(d.bytes), 1).value);
    expect(dims).toEqual([M, K]);
    const output = readFields(one(graph, 12).bytes);
    expect(text(one(output, 1))).toBe('y');
  });

  it('writes symbolic dimensions as dim_param', () => {
    const bytes = encodeOnnxModel({
      name: 'g',
      nodes: [{ opType: 'Relu', inputs: ['x'], outputs: ['y'] }],
      inputs: [{ name: 'x', type: OnnxDataType.Float16, dims: ['batch', 8] }],
      outputs: [{ name: 'y', type: OnnxDataType.Float16, dims: ['batch', 8] }],
      opset: 13,
    });
    const graph = readFields(one(readFields(bytes), 7).bytes);
    const tensorType = readFields(one(readFields(one(readFields(one(graph, 11).bytes), 2).bytes), 1).bytes);
    expect(one(tensorType, 1).value).toBe(10);
    const [d0, d1] = all(readFields(one(tensorType, 2).bytes), 1).map((d) => readFields(d.bytes));
    expect(text(one(d0, 2))).toBe('batch');
    expect(one(d1, 1).value).toBe(8);
  });

  it('rejects a weight of the wrong size', () => {
    expect(() => matmulModel(2, 3, 4, new Float32Array(11))).toThrow(/\[3, 4\]/);
  });

  it('runs in onnxruntime-web (wasm backend) and computes a · b', async () => {
    const ort = await import('onnxruntime-web');
    const [M, K, N] = [3, 5, 7];
    const a = Float32Array.from({ length: M * K }, (_, i) => (i % 7) - 3);
    const b = Float32Array.from({ length: K * N }, (_, i) => ((i * 5) % 11) * 0.25 - 1);
    const session = await ort.InferenceSession.create(matmulModel(M, K, N, b), { executionProviders: ['wasm'] });
    try {
      const r = await session.run({ a: new ort.Tensor('float32', a, [M, K]) });
      expect(r.y.dims).toEqual([M, N]);
      const want = new Float32Array(M * N);
      for (let m = 0; m < M; m++) for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) want[m * N + n] += a[m * K + k] * b[k * N + n];
      // Small integers and quarters: exact in f32 whatever the summation order.
      expect(Array.from(r.y.data as Float32Array)).toEqual(Array.from(want));
    } finally {
      await session.release();
    }
  }, 30_000);
});
