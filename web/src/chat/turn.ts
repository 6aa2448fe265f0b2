/**
 * One chat turn, independent of the UI: the stored conversation becomes a `GenerationRequest`
 * (system prompt, every turn's text, images in message order, the latest video), the engine
 * streams the answer, and the turn's speed is measured:
 *
 *   TTFT       submit → first text delta (seconds)
 *   tokens/s   completion tokens after the first / time after the first delta (decode speed);
 *              with one token, 1 / total time
 */
import type { Engine, ImageInput, VideoFramesInput } from '../../../shared/engine/engine.ts';
import type { ChatContentPart, ChatMessage } from '../../../shared/text/chat-template.ts';
import type { VideoFileInput, WebGenerationRequest } from '../engine/web-request.ts';
import { type AnswerMeta, type ChatSettings, newId, type StoredMessage } from './store.ts';

export interface BuildRequestOptions {
  /** Turns so far, ending with the user message to answer. */
  history: readonly StoredMessage[];
  settings: Pick<ChatSettings, 'systemPrompt' | 'temperature' | 'maxTokens'>;
  /** Leave `max_tokens` to the server (`maxTokensAuto`), e.g. in the kiosk. */
  autoMaxTokens?: boolean;
  /** Decodes the latest video into frames (in-tab engines); without it the file bytes are sent. */
  sampleVideo?: (video: Blob) => Promise<VideoFramesInput>;
  sessionId?: string;
  signal?: AbortSignal;
}

const blobBytes = async (b: Blob) => new Uint8Array(await b.arrayBuffer());

/**
 * The engine request for a conversation.
 *
 * @example
 * const req = await buildRequest({ history: conv.messages, settings });
 */
export async function buildRequest(o: BuildRequestOptions): Promise<WebGenerationRequest> {
  const messages: ChatMessage[] = [];
  const images: ImageInput[] = [];
  if (o.settings.systemPrompt.trim()) messages.push({ role: 'system', content: o.settings.systemPrompt });
  // One video per request (the API's rule): the most recent one; older videos are dropped.
  let lastVideo: { msg: number; att: number } | null = null;
  for (let i = 0; i < o.history.length; i++) {
    const atts = o.history[i]!.attachments ?? [];
    for (let j = 0; j < atts.length; j++) if (atts[j]!.kind === 'video') lastVideo = { msg: i, att: j };
  }
  let videoFile: VideoFileInput | undefined;
  let video: VideoFramesInput | undefined;
  for (let i = 0; i < o.history.length; i++) {
    const m = o.history[i]!;
    if (m.role === 'assistant') {
      messages.push({ role: 'assistant', content: m.text });
      continue;
    }
    const atts = m.attachments ?? [];
    if (atts.length === 0) {
      messages.push({ role: 'user', content: m.text });
      continue;
    }
    const parts: ChatContentPart[] = [];
    for (let j = 0; j < atts.length; j++) {
      const a = atts[j]!;
      if (a.kind === 'image') {
        images.push({ bytes: await blobBytes(a.data), mimeType: a.mimeType });
        parts.push({ type: 'image' });
      } else if (lastVideo?.msg === i && lastVideo.att === j) {
        if (o.sampleVideo) video = await o.sampleVideo(a.data);
        else videoFile = { bytes: await blobBytes(a.data), mimeType: a.mimeType || 'video/mp4', name: a.name };
        parts.push({ type: 'video' });
      }
    }
    if (m.text) parts.push({ type: 'text', text: m.text });
    messages.push({ role: 'user', content: parts });
  }
  const req: WebGenerationRequest = {
    id: newId(),
    messages,
    images,
    sampling: {
      maxTokens: o.settings.maxTokens,
      ...(o.autoMaxTokens ? { maxTokensAuto: true } : {}),
      temperature: o.settings.temperature,
      topP: 1,
      topK: 0,
    },
    priority: 'interactive',
  };
  if (video) req.video = video;
  if (videoFile) req.videoFile = videoFile;
  if (o.sessionId) req.sessionId = o.sessionId;
  if (o.signal) req.signal = o.signal;
  return req;
}

export interface RunTurnOptions {
  engine: Engine;
  /** Shown in the speed line ("server: model-id"). */
  engineLabel: string;
  request: WebGenerationRequest;
  /** Called with the whole answer so far after each delta. */
  onText: (text: string) => void;
  /** Called once with the first delta's latency. */
  onFirstToken?: (ttftS: number) => void;
}

/** The finished answer. */
export interface TurnResult {
  text: string;
  meta: AnswerMeta;
}

/**
 * Streams one answer; engine errors propagate (the caller shows them).
 *
 * @example
 * const { text, meta } = await runTurn({ engine, engineLabel: 'server', request, onText: render });
 */
export async function runTurn(o: RunTurnOptions): Promise<TurnResult> {
  const t0 = performance.now();
  let tFirst = 0;
  let text = '';
  let deltas = 0;
  let done: { finishReason: 'stop' | 'length' | 'abort'; completionTokens: number } | null = null;
  for await (const ev of o.engine.stream(o.request)) {
    if (ev.kind === 'delta') {
      if (ev.text === '') continue;
      if (deltas === 0) {
        tFirst = performance.now();
        o.onFirstToken?.((tFirst - t0) / 1000);
      }
      deltas++;
      text += ev.text;
      o.onText(text);
    } else {
      done = { finishReason: ev.finishReason, completionTokens: ev.completionTokens };
    }
  }
  const tEnd = performance.now();
  const tokens = done?.completionTokens || deltas;
  const ttftS = deltas > 0 ? (tFirst - t0) / 1000 : 0;
  const decodeS = (tEnd - tFirst) / 1000;
  const tokensPerS = tokens > 1 && decodeS > 0 ? (tokens - 1) / decodeS : tokens > 0 ? tokens / ((tEnd - t0) / 1000) : 0;
  return {
    text,
    meta: { engine: o.engineLabel, ttftS, tokensPerS, completionTokens: tokens, finishReason: done?.finishReason ?? 'stop' },
  };
}
