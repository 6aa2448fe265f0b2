/**
 * `generation_config.json`, normalised: stop ids and the checkpoint's sampling defaults. Absent
 * keys take transformers' `GenerationConfig` defaults (greedy, temperature 1, top_k 50,
 * top_p 1, repetition_penalty 1). Errors name the file and the key.
 */
import { ConfigError } from './config.ts';

export interface GenerationConfig {
  /** Tokens that end generation (`eos_token_id`, an int or a list); empty when the file has none. */
  eosTokenIds: number[];
  padTokenId: number | null;
  bosTokenId: number | null;
  /** Sample (true) or take the argmax (false). */
  doSample: boolean;
  temperature: number;
  /** 0 = no top-k filtering. */
  topK: number;
  /** 1 = no nucleus filtering. */
  topP: number;
  repetitionPenalty: number;
  /** `max_new_tokens`, null when the file does not set it. */
  maxNewTokens: number | null;
}

/** transformers' defaults for the keys a file leaves out. */
export const GENERATION_DEFAULTS: Readonly<GenerationConfig> = Object.freeze({
  eosTokenIds: [],
  padTokenId: null,
  bosTokenId: null,
  doSample: false,
  temperature: 1,
  topK: 50,
  topP: 1,
  repetitionPenalty: 1,
  maxNewTokens: null,
});

/**
 * Parses a `generation_config.json` object.
 *
 * @example
 * const gen = parseGenerationConfig(JSON.parse(text));
 * const stop = new Set(gen.eosTokenIds);
 */
export function parseGenerationConfig(raw: unknown, file = 'generation_config.json'): GenerationConfig {
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw new ConfigError(`${file}: not a JSON object`);
  const o = raw as Record<string, unknown>;
  const present = (key: string) => o[key] !== undefined && o[key] !== null;
  const tokenId = (v: unknown) => typeof v === 'number' && Number.isInteger(v) && v >= 0;
  const optId = (key: string): number | null => {
    if (!present(key)) return null;
    if (!tokenId(o[key])) throw new ConfigError(`${file}: "${key}" must be a token id (a non-negative integer), got ${JSON.stringify(o[key])}`);
    return o[key] as number;
  };
  const number = (key: string, fallback: number, ok: (v: number) => boolean, what: string): number => {
    if (!present(key)) return fallback;
    const v = o[key];
    if (typeof v !== 'number' || !Number.isFinite(v) || !ok(v)) throw new ConfigError(`${file}: "${key}" must be ${what}, got ${JSON.stringify(v)}`);
    return v;
  };

  let eosTokenIds: number[] = [];
  if (present('eos_token_id')) {
    const e = o.eos_token_id;
    const list = Array.isArray(e) ? e : [e];
    if (!list.every(tokenId)) {
      throw new ConfigError(`${file}: "eos_token_id" must be a token id or a list of token ids, got ${JSON.stringify(e)}`);
    }
    eosTokenIds = [...new Set(list as number[])];
  }
  if (present('do_sample') && typeof o.do_sample !== 'boolean') {
    throw new ConfigError(`${file}: "do_sample" must be true or false, got ${JSON.stringify(o.do_sample)}`);
  }
  const d = GENERATION_DEFAULTS;
  return {
    eosTokenIds,
    padTokenId: optId('pad_token_id'),
    bosTokenId: optId('bos_token_id'),
    doSample: (o.do_sample as boolean | undefined) ?? d.doSample,
    temperature: number('temperature', d.temperature, (v) => v >= 0, 'a number ≥ 0'),
    topK: number('top_k', d.topK, (v) => Number.isInteger(v) && v >= 0, 'a non-negative integer'),
    topP: number('top_p', d.topP, (v) => v > 0 && v <= 1, 'a number in (0, 1]'),
    repetitionPenalty: number('repetition_penalty', d.repetitionPenalty, (v) => v > 0, 'a number > 0'),
    maxNewTokens: present('max_new_tokens')
      ? number('max_new_tokens', 0, (v) => Number.isInteger(v) && v > 0, 'a positive integer')
      : null,
  };
}
