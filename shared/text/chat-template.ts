/**
 * Chat prompt construction for Qwen3-VL, as the official processor does it:
 *
 *   messages ──chat template (Jinja)──► prompt ──pad expansion──► text ──tokenizer──► input_ids
 *                                                                                 └─► mm_token_type_ids
 *
 * The template renders each image part as `<|vision_start|><|image_pad|><|vision_end|>` and each
 * video part as `<|vision_start|><|video_pad|><|vision_end|>`. Pad expansion then follows the
 * transformers 4.57 `Qwen3VLProcessor`:
 *
 *   image (grid t,h,w):  <|image_pad|> → (t·h·w / m²) × <|image_pad|>            (m = spatial merge, 2)
 *   video (grid T,h,w):  <|vision_start|><|video_pad|><|vision_end|> →
 *        for i < T:  "<{ts_i:.1f} seconds>" <|vision_start|> (h·w / m²) × <|video_pad|> <|vision_end|>
 *
 *   e.g. grid [2,4,4], timestamps [0.25, 1.25], m = 2:
 *   <0.2 seconds><|vision_start|><|video_pad|>×4<|vision_end|><1.2 seconds><|vision_start|><|video_pad|>×4<|vision_end|>
 *
 * The expansion is done on the text and the result is tokenized as a whole, like the processor
 * (the timestamp text is tokenized in context). One deliberate difference: the official code
 * builds the expansion with a literal "<|placeholder|>" marker, so a user who types
 * "<|placeholder|>" gets it turned into pad tokens; this code uses no marker.
 */
import { Template } from '@huggingface/jinja';
import { mmTokenTypes } from '../model/qwen3-vl/rope-index.ts';
import { ChatTemplateError, PromptExpansionError } from './errors.ts';
import { formatPyFixed1 } from './py-format.ts';
import type { Tokenizer } from './tokenizer.ts';

/** One part of a list-of-parts message content (OpenAI / Hugging Face style). */
export interface ChatContentPart {
  type?: 'text' | 'image' | 'video' | 'image_url' | (string & {});
  text?: string;
  image?: unknown;
  image_url?: unknown;
  video?: unknown;
  [key: string]: unknown;
}

export interface ChatToolCall {
  type?: string;
  function?: { name: string; arguments: string | Record<string, unknown> };
  name?: string;
  arguments?: string | Record<string, unknown>;
  [key: string]: unknown;
}

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant' | 'tool' | (string & {});
  content?: string | ChatContentPart[] | null;
  tool_calls?: ChatToolCall[];
  [key: string]: unknown;
}

export interface ChatTemplateOptions {
  /** Append the assistant header (`<|im_start|>assistant\n`). Default false, as in transformers. */
  addGenerationPrompt?: boolean;
  /** Tool schemas (OpenAI function format), rendered with `tojson` into the system block. */
  tools?: readonly unknown[] | null;
  /** Prefix "Picture N: " / "Video N: " to each image / video. */
  addVisionId?: boolean;
  /** Further template variables, like `apply_chat_template(**kwargs)`. */
  extra?: Record<string, unknown>;
}

/**
 * Picks the template text out of what a checkpoint ships: a raw `chat_template.jinja` string, a
 * `chat_template.json` / `tokenizer_config.json` object with `chat_template` (a string, or a list
 * of `{name, template}` where `name` selects one, default "default").
 */
export function resolveChatTemplate(source: unknown, name = 'default'): string {
  if (typeof source === 'string') return source;
  if (typeof source === 'object' && source !== null && 'chat_template' in source) {
    const t = (source as { chat_template: unknown }).chat_template;
    if (typeof t === 'string') return t;
    if (Array.isArray(t)) {
      const hit = t.find((x) => x && typeof x === 'object' && x.name === name);
      if (hit && typeof hit.template === 'string') return hit.template;
      throw new ChatTemplateError(`no chat template named "${name}" (have: ${t.map((x) => x?.name).join(', ')})`);
    }
  }
  throw new ChatTemplateError('no chat_template found');
}

/** The special-token strings transformers passes to every template (`bos_token`, `eos_token`, …). */
export function specialTokenVariables(tokenizerConfig: Record<string, unknown>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const key of ['bos_token', 'eos_token', 'unk_token', 'pad_token', 'sep_token', 'cls_token', 'mask_token']) {
    const v = tokenizerConfig[key];
    if (typeof v === 'string') out[key] = v;
    else if (v && typeof v === 'object' && typeof (v as { content?: unknown }).content === 'string') {
      out[key] = (v as { content: string }).content;
    }
  }
  return out;
}

/** A compiled chat template. */
export class ChatTemplate {
  private readonly template: Template;

  /**
   * @param source the Jinja text (see resolveChatTemplate)
   * @param variables always-present variables, e.g. specialTokenVariables(tokenizer_config)
   */
  constructor(
    source: string,
    private readonly variables: Record<string, unknown> = {},
  ) {
    try {
      this.template = new Template(source);
    } catch (e) {
      throw new ChatTemplateError(`chat template does not parse: ${(e as Error).message}`, { cause: e });
    }
  }

  /**
   * Renders `messages` to the prompt string (`apply_chat_template(..., tokenize=False)`).
   *
   * @example
   * tpl.render([{ role: 'user', content: [{ type: 'image' }, { type: 'text', text: 'Describe.' }] }],
   *            { addGenerationPrompt: true })
   * // "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>Describe.<|im_end|>\n<|im_start|>assistant\n"
   */
  render(messages: readonly ChatMessage[], options: ChatTemplateOptions = {}): string {
    if (messages.length === 0) throw new ChatTemplateError('no messages to render');
    const context: Record<string, unknown> = {
      ...this.variables,
      ...options.extra,
      messages,
      tools: options.tools ?? null,
      add_generation_prompt: options.addGenerationPrompt === true,
      // raise_exception is built into the Jinja runtime; its message ends up in the error below.
    };
    if (options.addVisionId) context.add_vision_id = true;
    try {
      return this.template.render(context);
    } catch (e) {
      throw new ChatTemplateError(`chat template failed to render: ${(e as Error).message}`, { cause: e });
    }
  }
}

/** The vision special tokens: ids from the model config, strings from the tokenizer. */
export interface VisionTokens {
  imageTokenId: number;
  videoTokenId: number;
  visionStartTokenId: number;
  visionEndTokenId: number;
  imageToken: string;
  videoToken: string;
  visionStart: string;
  visionEnd: string;
}

/** The keys of a Qwen3-VL `config.json` that name the vision tokens. */
export interface VisionTokenConfig {
  image_token_id: number;
  video_token_id: number;
  vision_start_token_id: number;
  vision_end_token_id: number;
}

/** Reads the vision token ids from `config.json` and looks their strings up in the tokenizer. */
export function visionTokens(config: VisionTokenConfig, tokenizer: Pick<Tokenizer, 'idToToken'>): VisionTokens {
  const str = (key: keyof VisionTokenConfig): string => {
    const id = config[key];
    if (!Number.isInteger(id)) throw new PromptExpansionError(`config.json has no integer ${key}`);
    const s = tokenizer.idToToken(id);
    if (s === undefined) throw new PromptExpansionError(`${key} ${id} is not a token of the tokenizer`);
    return s;
  };
  return {
    imageTokenId: config.image_token_id,
    videoTokenId: config.video_token_id,
    visionStartTokenId: config.vision_start_token_id,
    visionEndTokenId: config.vision_end_token_id,
    imageToken: str('image_token_id'),
    videoToken: str('video_token_id'),
    visionStart: str('vision_start_token_id'),
    visionEnd: str('vision_end_token_id'),
  };
}

export type GridThw = readonly [number, number, number];

/** One video as the processor sees it: its patch grid and one timestamp (seconds) per temporal patch. */
export interface VideoPrompt {
  gridThw: GridThw;
  timestamps: readonly number[];
}

/**
 * Seconds of each temporal patch: frames are grouped `framesPerPatch` at a time (the last group
 * padded with the last frame) and each group gets the mean of its first and last frame time —
 * `Qwen3VLProcessor._calculate_timestamps` (transformers passes the video processor's
 * merge_size there, 2 in the published configs, equal to temporal_patch_size).
 *
 * @example
 * videoTimestamps([0, 15, 30], 30) // [0.25, 1]
 */
export function videoTimestamps(frameIndices: readonly number[], fps: number, framesPerPatch = 2): number[] {
  if (!(fps > 0)) throw new PromptExpansionError(`video fps must be positive, got ${fps}`);
  if (frameIndices.length === 0) return [];
  const idx = [...frameIndices];
  while (idx.length % framesPerPatch !== 0) idx.push(idx[idx.length - 1]);
  const secs = idx.map((i) => i / fps);
  const out: number[] = [];
  for (let i = 0; i < secs.length; i += framesPerPatch) out.push((secs[i] + secs[i + framesPerPatch - 1]) / 2);
  return out;
}

export interface ExpandOptions {
  /** One grid per image, in prompt order. */
  imageGrids?: readonly GridThw[];
  /** One entry per video, in prompt order. */
  videos?: readonly VideoPrompt[];
  /** Spatial merge size (vision_config.spatial_merge_size); 2 for Qwen3-VL. */
  mergeSize?: number;
  /**
   * When true, pad tokens with no image / video to fill them (e.g. typed by a user) are an error
   * even if no images / videos are given. When false (default, as the official processor), they
   * are left as they are when no images (resp. videos) are passed at all.
   */
  strict?: boolean;
}

function tokensPerPatchGroup(h: number, w: number, m: number): number {
  return Math.floor((h * w) / (m * m));
}

/** The per-frame-group text of one video (4.57 layout). */
export function videoPlaceholder(video: VideoPrompt, tokens: VisionTokens, mergeSize = 2): string {
  const [t, h, w] = video.gridThw;
  if (video.timestamps.length < t) {
    throw new PromptExpansionError(`video grid has ${t} temporal patches but only ${video.timestamps.length} timestamps`);
  }
  const pads = tokens.videoToken.repeat(tokensPerPatchGroup(h, w, mergeSize));
  let s = '';
  for (let i = 0; i < t; i++) {
    s += `<${formatPyFixed1(video.timestamps[i])} seconds>${tokens.visionStart}${pads}${tokens.visionEnd}`;
  }
  return s;
}

/** Number of non-overlapping occurrences of `needle` in `s`. */
function countOccurrences(s: string, needle: string): number {
  let n = 0;
  for (let i = s.indexOf(needle); i >= 0; i = s.indexOf(needle, i + needle.length)) n++;
  return n;
}

/**
 * Expands the image and video placeholders of a rendered prompt, as `Qwen3VLProcessor.__call__`
 * (transformers 4.57 video layout) does before tokenizing.
 */
export function expandVisionPlaceholders(prompt: string, tokens: VisionTokens, options: ExpandOptions = {}): string {
  const m = options.mergeSize ?? 2;
  const grids = options.imageGrids ?? [];
  const videos = options.videos ?? [];
  let text = prompt;

  // Images: the k-th <|image_pad|> (in text order) belongs to the k-th image.
  const imageSlots = countOccurrences(text, tokens.imageToken);
  if (grids.length > 0 || (options.strict && imageSlots > 0)) {
    if (imageSlots !== grids.length) {
      throw new PromptExpansionError(`the prompt has ${imageSlots} image placeholders but ${grids.length} images were given`);
    }
    const parts = text.split(tokens.imageToken);
    text = parts[0];
    for (let k = 0; k < grids.length; k++) {
      const [t, h, w] = grids[k];
      text += tokens.imageToken.repeat(Math.floor((t * h * w) / (m * m))) + parts[k + 1];
    }
  }

  // Videos: each takes the first remaining <|vision_start|><|video_pad|><|vision_end|>, or, if no
  // such triple is left, the first bare <|video_pad|>.
  const triple = tokens.visionStart + tokens.videoToken + tokens.visionEnd;
  const videoSlots = countOccurrences(text, tokens.videoToken);
  if (videos.length > 0 || (options.strict && videoSlots > 0)) {
    if (videoSlots !== videos.length) {
      throw new PromptExpansionError(`the prompt has ${videoSlots} video placeholders but ${videos.length} videos were given`);
    }
    // Segments not yet expanded (strings) and expansions (boxed, never searched again).
    const segs: (string | { done: string })[] = [text];
    for (const video of videos) {
      const replacement = { done: videoPlaceholder(video, tokens, m) };
      let k = segs.findIndex((s) => typeof s === 'string' && s.includes(triple));
      let needle = triple;
      if (k < 0) {
        k = segs.findIndex((s) => typeof s === 'string' && s.includes(tokens.videoToken));
        needle = tokens.videoToken;
      }
      const seg = segs[k] as string;
      const at = seg.indexOf(needle);
      segs.splice(k, 1, seg.slice(0, at), replacement, seg.slice(at + needle.length));
    }
    text = segs.map((s) => (typeof s === 'string' ? s : s.done)).join('');
  }
  return text;
}

/** What the processor hands the model for one prompt. */
export interface PromptInputs {
  /** The prompt after pad expansion (the text that was tokenized). */
  text: string;
  inputIds: number[];
  /** Per id: 0 text, 1 image pad, 2 video pad (`mm_token_type_ids`). */
  mmTokenTypeIds: Uint8Array;
}

/** `mm_token_type_ids` of a token sequence: 0 text, 1 image pad, 2 video pad. */
export function mmTokenTypeIds(ids: ArrayLike<number>, tokens: Pick<VisionTokens, 'imageTokenId' | 'videoTokenId'>): Uint8Array {
  return mmTokenTypes(ids, tokens.imageTokenId, tokens.videoTokenId);
}

/**
 * Expands a rendered prompt and tokenizes it: the processor's `input_ids` and `mm_token_type_ids`.
 *
 * @example
 * const prompt = tpl.render(messages, { addGenerationPrompt: true });
 * const { inputIds } = buildPromptInputs(tok, prompt, visionTokens(config, tok), { imageGrids: [[1, 16, 20]] });
 */
export function buildPromptInputs(
  tokenizer: Pick<Tokenizer, 'encode'>,
  prompt: string,
  tokens: VisionTokens,
  options: ExpandOptions = {},
): PromptInputs {
  const text = expandVisionPlaceholders(prompt, tokens, options);
  const inputIds = tokenizer.encode(text);
  return { text, inputIds, mmTokenTypeIds: mmTokenTypeIds(inputIds, tokens) };
}
