/** Typed errors of the text pipeline (tokenizer, chat template, prompt expansion). */
import { VlmeshError } from '../errors.ts';

/** A `tokenizer.json` uses a component or a setting this tokenizer does not implement, or is malformed. */
export class TokenizerConfigError extends VlmeshError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('TOKENIZER_CONFIG', message, options);
  }
}

/** The chat template failed to parse or to render the given messages. */
export class ChatTemplateError extends VlmeshError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('CHAT_TEMPLATE', message, options);
  }
}

/** The vision placeholders in a prompt do not match the images / videos handed to the processor. */
export class PromptExpansionError extends VlmeshError {
  constructor(message: string) {
    super('PROMPT_EXPANSION', message);
  }
}
