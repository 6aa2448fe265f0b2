/**
 * `vlmesh serve --mesh-token T [--mesh-only]`: the served engine becomes a `MeshCoordinator`.
 * It keeps the head (embeddings, vision tower, and the decoder layers that take DeepStack
 * features) unless `--mesh-only`, in which case it runs no decoder layer: every layer is placed
 * on joined peers, and one of them is the head (it loads the embeddings and the vision tower too,
 * gets each prompt's token ids and pixels, and keeps the vision features). After the server
 * listens, `hostMesh` accepts peers.
 */
import { MeshCoordinator, type MeshCoordinatorOptions } from '../../shared/mesh/coordinator.ts';
import { Qwen3VLModel } from '../../shared/model/qwen3-vl/model.ts';
import type { OpenedModel } from '../io/model-dir.ts';

export interface MeshEngineOptions extends Omit<MeshCoordinatorOptions, 'model' | 'modelId'> {
  modelId: string;
  /** Run no decoder layer here. */
  meshOnly?: boolean;
}

/** Head layers: every layer that takes DeepStack features (at least one), or none when mesh-only. */
export function headLayers(config: OpenedModel['config'], meshOnly: boolean): number {
  return meshOnly ? 0 : Math.min(config.text.numLayers, Math.max(1, config.vision.deepstackVisualIndexes.length));
}

/**
 * A coordinator over an opened model (its weights stay loaded whole: the head needs the
 * embeddings, vision tower, final norm and lm_head; the other layers are the local fallback).
 */
export function createMeshEngine(opened: OpenedModel, o: MeshEngineOptions): MeshCoordinator {
  if (!opened.tokenizer || !opened.template) throw new TypeError('the mesh coordinator needs a tokenizer and a chat template');
  const h = headLayers(opened.config, o.meshOnly ?? false);
  const w = opened.model.weights;
  const L = opened.config.text.numLayers;
  const layerBytes = Math.max(1, Math.ceil(w.bytesOf((n) => n.startsWith('model.language_model.layers.')) / L));
  const headBytes = w.bytesOf((n) => n.startsWith('model.visual.') || n === 'model.language_model.embed_tokens.weight');
  return new MeshCoordinator({
    layerBytes,
    headBytes,
    ...o,
    model: {
      model: new Qwen3VLModel(opened.model.ctx, opened.config, opened.model.weights, [0, h]),
      config: opened.config,
      tokenizer: opened.tokenizer,
      template: opened.template,
      imageProcessor: opened.imageProcessor,
    },
  });
}
