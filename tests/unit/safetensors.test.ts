/**
 * safetensors reading: the golden checkpoints' headers, sharded checkpoints through an index,
 * byte sources (file, memory, Blob), and every malformed-file error naming the file and tensor.
 */
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { FileSource, fileDirectory } from '../../edge-node/io/file-source.ts';
import { blobDirectory, blobSource } from '../../shared/io/blob-source.ts';
import { memoryDirectory, memorySource } from '../../shared/io/byte-source.ts';
import { ByteSourceError, CheckpointError } from '../../shared/io/errors.ts';
import { Checkpoint, openCheckpoint, readSafetensorsHeader } from '../../shared/io/safetensors.ts';
import { encodeSafetensors, readBytes, rewriteHeader, tempDir, tensorBytes, writeSharded } from '../support/safetensors-files.ts';

const golden = fileURLToPath(new URL('../fixtures/golden/', import.meta.url));
const realvocab = join(golden, 'realvocab');
const fixtureBytes = readBytes(join(realvocab, 'model.safetensors'));
const tmp = tempDir('safetensors');
afterAll(() => tmp.remove());

/** Writes `bytes` as `<dir>/model.safetensors` in a fresh subdirectory and returns the directory. */
let dirCount = 0;
function writeCheckpoint(bytes: Uint8Array): string {
  const dir = join(tmp.path, `c${dirCount++}`);
  mkdirSync(dir);
  writeFileSync(join(dir, 'model.safetensors'), bytes);
  return dir;
}

/** Byte equality (vitest's deep equality is slow on MB-sized typed arrays). */
function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

/** The CheckpointError `fn` throws (fails the test if it throws anything else or nothing). */
async function checkpointError(fn: () => Promise<unknown>): Promise<CheckpointError> {
  try {
    await fn();
  } catch (e) {
    expect(e).toBeInstanceOf(CheckpointError);
    return e as CheckpointError;
  }
  throw new Error('expected a CheckpointError');
}

describe('golden checkpoints', () => {
  it('reads the realvocab header: 104 BF16 tensors, metadata, offsets', async () => {
    const ckpt = await openCheckpoint(fileDirectory(realvocab));
    try {
      expect(ckpt.size).toBe(104);
      expect(ckpt.sharded).toBe(false);
      expect(ckpt.files()).toEqual(['model.safetensors']);
      expect(ckpt.headers[0].metadata).toEqual({ format: 'pt' });
      expect(ckpt.headers[0].headerLength).toBe(11568);
      const emb = ckpt.tensor('model.language_model.embed_tokens.weight');
      expect(emb).toMatchObject({ dtype: 'BF16', shape: [151936, 32], elements: 151936 * 32, byteOffset: 8 + 11568, byteLength: 9723904 });
      expect(ckpt.tensor('model.visual.patch_embed.proj.weight').shape).toEqual([32, 3, 2, 16, 16]);
      expect(ckpt.tensors().every((t) => t.dtype === 'BF16')).toBe(true);
      expect(ckpt.dataBytes).toBe(fixtureBytes.byteLength - 8 - 11568);
      expect(ckpt.has('lm_head.weight')).toBe(false);
      // Bytes read through the checkpoint are the file's bytes.
      const norm = ckpt.tensor('model.language_model.norm.weight');
      expect(await ckpt.readBytes(norm.name)).toEqual(fixtureBytes.subarray(norm.byteOffset, norm.byteOffset + norm.byteLength));
      expect(await ckpt.readBytes(norm.name, 10, 6)).toEqual(fixtureBytes.subarray(norm.byteOffset + 10, norm.byteOffset + 16));
    } finally {
      await ckpt.close();
    }
  });

  it('reads the smallvocab header', async () => {
    const ckpt = await openCheckpoint(fileDirectory(join(golden, 'smallvocab')));
    try {
      expect(ckpt.size).toBe(104);
      expect(ckpt.tensor('model.language_model.embed_tokens.weight').shape).toEqual([2048, 32]);
    } finally {
      await ckpt.close();
    }
  });

  it('reads the same header from memory, a Blob and a File', async () => {
    const fromFile = await FileSource.open(join(realvocab, 'model.safetensors'));
    const want = await readSafetensorsHeader(fromFile);
    await fromFile.close();
    const mem = await readSafetensorsHeader(memorySource(fixtureBytes, 'model.safetensors'));
    const blob = await readSafetensorsHeader(blobSource(new Blob([fixtureBytes]), 'model.safetensors'));
    expect(mem).toEqual(want);
    expect(blob).toEqual(want);
    const dir = blobDirectory('picked', [new File([fixtureBytes], 'model.safetensors')]);
    const ckpt = await openCheckpoint(dir);
    expect(ckpt.names()).toEqual(want.tensors.map((t) => t.name));
    const t = ckpt.tensor('model.visual.pos_embed.weight');
    expect(sameBytes(await ckpt.readBytes(t.name), fixtureBytes.subarray(t.byteOffset, t.byteOffset + t.byteLength))).toBe(true);
  });

  it('byte sources refuse reads past the end, and a closed file', async () => {
    const src = await FileSource.open(join(realvocab, 'config.json'));
    await expect(src.read(src.size - 2, 3)).rejects.toThrow(ByteSourceError);
    await expect(src.read(src.size - 2, 3)).rejects.toThrow(/config\.json.*past the end/);
    expect(await src.read(src.size - 2, 2)).toHaveLength(2);
    await src.close();
    await src.close(); // idempotent
    await expect(src.read(0, 1)).rejects.toThrow(/after close/);
    await expect(memorySource(new Uint8Array(4), 'm').read(-1, 2)).rejects.toThrow(ByteSourceError);
    await expect(blobSource(new Blob([new Uint8Array(4)]), 'b').read(2, 3)).rejects.toThrow(/b: read of bytes \[2, 5\)/);
  });
});

describe('sharded checkpoints', () => {
  it('reads the same tensors from two shards and an index', async () => {
    const dir = join(tmp.path, 'sharded');
    mkdirSync(dir);
    const weightMap = writeSharded(dir, fixtureBytes, 2);
    const single = await openCheckpoint(fileDirectory(realvocab));
    const sharded = await openCheckpoint(fileDirectory(dir));
    try {
      expect(sharded.sharded).toBe(true);
      expect(sharded.files()).toEqual(['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors']);
      expect(new Set(sharded.names())).toEqual(new Set(single.names()));
      for (const name of single.names()) {
        const a = single.tensor(name);
        const b = sharded.tensor(name);
        expect(b.file).toBe(weightMap[name]);
        expect([b.dtype, b.shape]).toEqual([a.dtype, a.shape]);
        expect(sameBytes(await sharded.readBytes(name), await single.readBytes(name)), name).toBe(true);
      }
      expect(sharded.describe()).toContain('model.safetensors.index.json');
    } finally {
      await single.close();
      await sharded.close();
    }
  });

  it('names a missing shard and the tensor that needs it', async () => {
    const dir = join(tmp.path, 'missing-shard');
    mkdirSync(dir);
    writeSharded(dir, fixtureBytes, 2);
    const files = new Map<string, Uint8Array>();
    for (const f of ['model.safetensors.index.json', 'model-00001-of-00002.safetensors']) files.set(f, readBytes(join(dir, f)));
    const mem = memoryDirectory('ckpt', [...files].map(([n, b]) => memorySource(b, n)));
    const err = await checkpointError(() => openCheckpoint(mem));
    expect(err.message).toMatch(/model\.safetensors\.index\.json lists shard model-00002-of-00002\.safetensors \(for tensor "[^"]+"/);
    expect(err.message).toContain('missing');
    expect(err.file).toBe('model-00002-of-00002.safetensors');
  });

  it('names a tensor the index maps to the wrong shard, and a tensor stored twice', async () => {
    const a = encodeSafetensors({ x: { dtype: 'F32', shape: [2], data: new Uint8Array(8) } });
    const b = encodeSafetensors({ y: { dtype: 'F32', shape: [1], data: new Uint8Array(4) } });
    const index = (map: Record<string, string>) => memorySource(new TextEncoder().encode(JSON.stringify({ weight_map: map })), 'model.safetensors.index.json');
    const dir = (map: Record<string, string>) => memoryDirectory('d', [index(map), memorySource(a, 'a.safetensors'), memorySource(b, 'b.safetensors')]);
    const ok = await openCheckpoint(dir({ x: 'a.safetensors', y: 'b.safetensors' }));
    expect(ok.names()).toEqual(['x', 'y']);
    let err = await checkpointError(() => openCheckpoint(dir({ x: 'b.safetensors', y: 'a.safetensors' })));
    expect(err.message).toBe('model.safetensors.index.json maps tensor "x" to b.safetensors, but it is in a.safetensors');
    err = await checkpointError(() => openCheckpoint(dir({ x: 'a.safetensors', z: 'b.safetensors' })));
    expect(err.message).toContain('maps tensor "z" to b.safetensors, but no file of the checkpoint has it');
    err = await checkpointError(() => openCheckpoint(dir({ x: '../a.safetensors' })));
    expect(err.message).toContain('"weight_map.x" must be a file name in the same directory');
    err = await checkpointError(() => Checkpoint.fromSources('d', [memorySource(a, 'a.safetensors'), memorySource(a, 'c.safetensors')]));
    expect(err.message).toBe('d: tensor "x" is stored twice, in a.safetensors and in c.safetensors');
  });

  it('says when a directory has no checkpoint', async () => {
    const err = await checkpointError(() => openCheckpoint(memoryDirectory('empty-dir', [])));
    expect(err.message).toBe('empty-dir: no model.safetensors and no model.safetensors.index.json: not a safetensors checkpoint');
  });
});

describe('malformed files name the file and the tensor', () => {
  const parse = (bytes: Uint8Array) => checkpointError(() => openCheckpoint(fileDirectory(writeCheckpoint(bytes))));

  it('a truncated file', async () => {
    const err = await parse(fixtureBytes.subarray(0, fixtureBytes.byteLength - 1000));
    expect(err.message).toMatch(/^model\.safetensors: the file is truncated: tensor "model\.visual\.pos_embed\.weight" needs data bytes \[10089984, 10094080\) but the data section holds only 10093080 bytes/);
    expect(err.tensor).toBe('model.visual.pos_embed.weight');
    expect(err.code).toBe('BAD_CHECKPOINT');
  });

  it('a file cut inside its header, or shorter than the length field', async () => {
    let err = await parse(fixtureBytes.subarray(0, 5000));
    expect(err.message).toBe(
      'model.safetensors: the header length field says 11568 bytes but the file has only 4992 bytes after it (truncated, or not a safetensors file)',
    );
    err = await parse(fixtureBytes.subarray(0, 5));
    expect(err.message).toBe('model.safetensors: 5 bytes is too small to be a safetensors file (truncated?)');
  });

  it('an unsupported dtype (I64)', async () => {
    const bytes = rewriteHeader(fixtureBytes, (h) => {
      h['model.language_model.layers.1.self_attn.q_norm.weight'].dtype = 'I64';
    });
    const err = await parse(bytes);
    expect(err.message).toBe(
      'model.safetensors: tensor "model.language_model.layers.1.self_attn.q_norm.weight": dtype I64 is not supported (supported: BF16, F16, F32)',
    );
    expect(err.tensor).toBe('model.language_model.layers.1.self_attn.q_norm.weight');
  });

  it('an unknown dtype', async () => {
    const err = await parse(rewriteHeader(fixtureBytes, (h) => void (h['model.visual.pos_embed.weight'].dtype = 'Q4_K')));
    expect(err.message).toBe('model.safetensors: tensor "model.visual.pos_embed.weight": dtype Q4_K is not a safetensors dtype (supported: BF16, F16, F32)');
  });

  it('a BF16 tensor relabelled F32 (byte length disagrees with shape × dtype)', async () => {
    const err = await parse(rewriteHeader(fixtureBytes, (h) => void (h['model.visual.merger.norm.weight'].dtype = 'F32')));
    expect(err.message).toBe(
      'model.safetensors: tensor "model.visual.merger.norm.weight": data_offsets [9991552, 9991616] hold 64 bytes, but F32 [32] needs 32 × 4 = 128 bytes',
    );
  });

  it('a shape that disagrees with the byte length', async () => {
    const err = await parse(rewriteHeader(fixtureBytes, (h) => void (h['model.language_model.norm.weight'].shape = [33])));
    expect(err.message).toContain('tensor "model.language_model.norm.weight": data_offsets [9798208, 9798272] hold 64 bytes, but BF16 [33] needs 33 × 2 = 66 bytes');
  });

  it('overlapping tensors', async () => {
    const bytes = rewriteHeader(fixtureBytes, (h) => {
      // Point one bias at the bytes of the tensor before it.
      h['model.visual.blocks.0.attn.proj.bias'].data_offsets = [9798208, 9798272];
    });
    const err = await parse(bytes);
    expect(err.message).toMatch(/^model\.safetensors: tensor "model\.(language_model\.norm\.weight|visual\.blocks\.0\.attn\.proj\.bias)" .* overlaps tensor "/);
  });

  it('bad JSON, a non-object header, bad entries', async () => {
    const raw = (json: string) => {
      const j = new TextEncoder().encode(json);
      const out = new Uint8Array(8 + j.byteLength);
      new DataView(out.buffer).setBigUint64(0, BigInt(j.byteLength), true);
      out.set(j, 8);
      return out;
    };
    expect((await parse(raw('{"a": '))).message).toMatch(/^model\.safetensors: the safetensors header \(6 bytes\) is not valid JSON/);
    expect((await parse(raw('[1, 2]'))).message).toBe('model.safetensors: the safetensors header is not a JSON object');
    expect((await parse(raw('{"w": {"dtype": "F32", "shape": [1.5], "data_offsets": [0, 4]}}'))).message).toBe(
      'model.safetensors: tensor "w": "shape" must be a list of non-negative integers, got [1.5]',
    );
    expect((await parse(raw('{"w": {"dtype": "F32", "shape": [1], "data_offsets": [4, 0]}}'))).message).toBe(
      'model.safetensors: tensor "w": "data_offsets" must be [begin, end] with 0 ≤ begin ≤ end, got [4,0]',
    );
    expect((await parse(raw('{"__metadata__": {"format": 1}}'))).message).toBe('model.safetensors: "__metadata__.format" must be a string, got 1');
    const err = await parse(raw('{"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}'));
    expect(err.message).toMatch(/truncated: tensor "w" needs data bytes \[0, 4\) but the data section holds only 0 bytes/);
  });

  it('accepts scalars, empty tensors and F16/F32 tensors', async () => {
    const bytes = encodeSafetensors({
      s: { dtype: 'F32', shape: [], data: new Uint8Array(4) },
      e: { dtype: 'F16', shape: [0, 7], data: new Uint8Array(0) },
      h: { dtype: 'F16', shape: [3], data: new Uint8Array(6) },
    });
    const ckpt = await Checkpoint.fromSources('mem', [memorySource(bytes, 'x.safetensors')]);
    expect(ckpt.tensor('s')).toMatchObject({ elements: 1, byteLength: 4, shape: [] });
    expect(ckpt.tensor('e')).toMatchObject({ elements: 0, byteLength: 0 });
    expect(ckpt.tensor('h')).toMatchObject({ dtype: 'F16', elements: 3, byteLength: 6 });
    const err = await checkpointError(() => ckpt.readBytes('h', 4, 4));
    expect(err.message).toBe('x.safetensors: tensor "h": bytes [4, 8) are outside its 6 bytes');
    expect((await checkpointError(async () => ckpt.tensor('nope'))).message).toBe('x.safetensors: no tensor "nope"');
  });

  it('the golden file round-trips through the test encoder (the encoder is sound)', async () => {
    const re = encodeSafetensors(Object.fromEntries(tensorBytes(fixtureBytes)));
    const dir = writeCheckpoint(re);
    copyFileSync(join(realvocab, 'config.json'), join(dir, 'config.json'));
    const ckpt = await openCheckpoint(fileDirectory(dir));
    expect(ckpt.size).toBe(104);
    await ckpt.close();
  });
});
