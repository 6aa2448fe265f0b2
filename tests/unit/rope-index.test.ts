import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { getRopeIndex, mmTokenTypes } from '../../shared/model/qwen3-vl/rope-index.ts';
import { type GoldenCase, type GoldenTensor, rows3, tensor } from '../support/golden.ts';

const root = fileURLToPath(new URL('../fixtures/golden/', import.meta.url));
const cases: [string, string][] = [];
for (const dir of ['smallvocab', 'realvocab', 'e2e']) {
  for (const f of readdirSync(root + dir)) if (/^case_.*\.json$/.test(f)) cases.push([dir, f]);
}

describe('get_rope_index against the official position ids', () => {
  it.each(cases)('%s/%s', (dir, file) => {
    const c = JSON.parse(readFileSync(`${root}${dir}/${file}`, 'utf8')) as GoldenCase;
    const config = JSON.parse(readFileSync(`${root}${dir === 'e2e' ? 'realvocab' : dir}/config.json`, 'utf8'));
    const ids = tensor(c, 'input_ids').data;
    const r = getRopeIndex({
      inputIds: ids,
      imageGridThw: rows3(c.image_grid_thw as GoldenTensor | undefined),
      videoGridThw: rows3(c.video_grid_thw as GoldenTensor | undefined),
      imageTokenId: config.image_token_id,
      videoTokenId: config.video_token_id,
      spatialMergeSize: config.vision_config.spatial_merge_size,
    });
    const want = tensor(c, 'position_ids');
    const S = ids.length;
    expect(want.shape).toEqual([3, S]);
    for (let axis = 0; axis < 3; axis++) {
      expect(Array.from(r.positions[axis]), `axis ${axis}`).toEqual(want.data.slice(axis * S, (axis + 1) * S));
    }
    expect(r.ropeDelta).toBe(tensor(c, 'rope_deltas').data[0]);
    expect(Array.from(mmTokenTypes(ids, config.image_token_id, config.video_token_id))).toEqual(
      tensor(c, 'mm_token_type_ids').data,
    );
  });

  it('rejects a prompt whose pads do not match the grids', () => {
    const base = { imageTokenId: 9, videoTokenId: 8, spatialMergeSize: 2 };
    expect(() => getRopeIndex({ ...base, inputIds: [1, 9, 9, 2], imageGridThw: [[1, 4, 4]] })).toThrow(/fewer than the 4 pad/);
    expect(() => getRopeIndex({ ...base, inputIds: [1, 9, 2] })).toThrow(/more image spans/);
    expect(() => getRopeIndex({ ...base, inputIds: [1, 2], imageGridThw: [[1, 2, 2]] })).toThrow(/1 image grids but 0/);
  });
});
