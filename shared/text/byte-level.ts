/**
 * The GPT-2 byte ↔ unicode map used by byte-level BPE.
 *
 * Every byte gets a printable character so that BPE can work on strings:
 *
 *   bytes 0x21–0x7E, 0xA1–0xAC, 0xAE–0xFF  → the character with the same code point
 *   the other 68 bytes (controls, space, 0x7F–0xA0, 0xAD) → U+0100, U+0101, … in byte order
 *
 * so the space 0x20 becomes 'Ġ' (U+0120) and '\n' 0x0A becomes 'Ċ' (U+010A).
 */

/** BYTE_TO_CHAR[b] is the character that stands for byte b. */
export const BYTE_TO_CHAR: readonly string[] = buildByteToChar();

/** Code point of a stand-in character → its byte; -1 where the code point stands for no byte. */
const CHAR_TO_BYTE: Int16Array = buildCharToByte();

function buildByteToChar(): string[] {
  const out = new Array<string>(256);
  let next = 256;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    out[b] = String.fromCharCode(printable ? b : next++);
  }
  return out;
}

function buildCharToByte(): Int16Array {
  const out = new Int16Array(324).fill(-1);
  for (let b = 0; b < 256; b++) out[BYTE_TO_CHAR[b].charCodeAt(0)] = b;
  return out;
}

const utf8 = new TextEncoder();

/** UTF-8 encodes `text` and replaces every byte by its stand-in character. */
export function bytesToUnicode(text: string): string {
  const bytes = utf8.encode(text);
  let s = '';
  for (let i = 0; i < bytes.length; i++) s += BYTE_TO_CHAR[bytes[i]];
  return s;
}

/**
 * Appends the bytes a byte-level token stands for to `out`. Like the Hugging Face ByteLevel
 * decoder: if any character of the token is not a stand-in character, the token's own UTF-8
 * bytes are used instead.
 */
export function pushTokenBytes(token: string, out: number[]): void {
  const start = out.length;
  for (let i = 0; i < token.length; i++) {
    const c = token.charCodeAt(i);
    const b = c < CHAR_TO_BYTE.length ? CHAR_TO_BYTE[c] : -1;
    if (b < 0) {
      out.length = start;
      for (const raw of utf8.encode(token)) out.push(raw);
      return;
    }
    out.push(b);
  }
}
