/** Text inputs for Qwen3-VL: tokenizer, streaming detokenizer, chat template and prompt expansion. */
export { BYTE_TO_CHAR, bytesToUnicode } from './byte-level.ts';
export {
  buildPromptInputs,
  type ChatContentPart,
  type ChatMessage,
  ChatTemplate,
  type ChatTemplateOptions,
  type ChatToolCall,
  type ExpandOptions,
  expandVisionPlaceholders,
  type GridThw,
  mmTokenTypeIds,
  type PromptInputs,
  resolveChatTemplate,
  specialTokenVariables,
  type VideoPrompt,
  type VisionTokenConfig,
  type VisionTokens,
  videoPlaceholder,
  videoTimestamps,
  visionTokens,
} from './chat-template.ts';
export { ChatTemplateError, PromptExpansionError, TokenizerConfigError } from './errors.ts';
export { caseVariants, translateOnigRegex } from './onig-regex.ts';
export { formatPyFixed, formatPyFixed1 } from './py-format.ts';
export {
  type AddedToken,
  type DecodeOptions,
  type EncodeOptions,
  StreamingDecoder,
  Tokenizer,
  type TokenizerJson,
} from './tokenizer.ts';
