/**
 * From raw inputs to tokens: chat messages + raw video frames through the processor steps
 * (prepareChat: template, frame preprocessing, timestamps, pad expansion, tokenizer) and the model,
 * against the official pipeline's ids and greedy tokens (realvocab case_video, f32).
 */
import { fixtureBytes, fixtureJson } from '#fixtures';
import { describe, expect, it } from 'vitest';
import { generate } from '../../shared/engine/generate.ts';
import { prepareChat } from '../../shared/engine/prompt.ts';
import { processorConfigFromJson, QWEN3_VL_IMAGE_CONFIG, QWEN3_VL_VIDEO_CONFIG } from '../../shared/io/image/preprocess.ts';
import { parseQwen3VLConfig } from '../../shared/model/qwen3-vl/config.ts';
import { loadWeights } from '../../shared/model/qwen3-vl/load.ts';
import { Qwen3VLModel } from '../../shared/model/qwen3-vl/model.ts';
import { ChatTemplate, resolveChatTemplate, specialTokenVariables } from '../../shared/text/chat-template.ts';
import { Tokenizer } from '../../shared/text/tokenizer.ts';
import { safetensorsBytes } from '../support/checkpoint.ts';
import { type GoldenCase, tensor } from '../support/golden.ts';
import { environment, testContext } from '../support/gpu.ts';

const ctx = await testContext();

describe.skipIf(!ctx)(`messages + raw video frames → official ids and tokens (${environment})`, () => {
  it('realvocab case_video', async () => {
    const c = ctx!;
    const dir = 'golden/realvocab/';
    const config = parseQwen3VLConfig(await fixtureJson(`${dir}config.json`));
    const gold = await fixtureJson<GoldenCase>(`${dir}case_video.json`);
    const tokenizer = Tokenizer.fromJSON(await fixtureJson(`${dir}tokenizer.json`));
    const tokConfig = await fixtureJson<Record<string, unknown>>(`${dir}tokenizer_config.json`);
    const template = new ChatTemplate(resolveChatTemplate(await fixtureJson(`${dir}chat_template.json`)), specialTokenVariables(tokConfig));
    const videoProcessor = processorConfigFromJson(await fixtureJson(`${dir}video_preprocessor_config.json`), QWEN3_VL_VIDEO_CONFIG);
    const weights = await loadWeights(c, config, safetensorsBytes(await fixtureBytes(`${dir}model.safetensors`)), { dtype: 'f32' });
    const model = new Qwen3VLModel(c, config, weights);
    // Raw frames [T, H, W, 3] as the case fed them to the official processor.
    const raw = tensor(gold, 'raw_video_thwc_uint8');
    const [T, H, W] = raw.shape;
    const frames = Array.from({ length: T }, (_, t) => Uint8Array.from(raw.data.slice(t * H * W * 3, (t + 1) * H * W * 3)));
    const { prompt, inputIds } = await prepareChat(
      { model, config, tokenizer, template, imageProcessor: QWEN3_VL_IMAGE_CONFIG },
      [{ role: 'user', content: [{ type: 'video' }, { type: 'text', text: 'What happens in the video?' }] }],
      [],
      { video: { frames, width: W, height: H, frameIndices: gold.frame_indices as number[], fps: gold.fps as number, processor: videoProcessor } },
    );
    expect(inputIds).toEqual(tensor(gold, 'input_ids').data);
    const kv = model.createKvCache({ numBlocks: 8, blockSize: 16 });
    const result = await generate(model, kv, prompt, { maxNewTokens: 8 });
    expect(result.tokens).toEqual(tensor(gold, 'generated_ids').data);
    prompt.release();
    kv.release();
    weights.release();
  });
});
