/**
 * Token-aware chunking with overlap. Tokens are estimated as characters ÷ 4 (the estimate the
 * cascade uses for prompts everywhere else). Text is cut at paragraph, then sentence, then word
 * boundaries, so a chunk ends mid-word only when a single word is longer than a chunk. Each
 * chunk after the first starts with the tail (about `overlapTokens`) of the one before it.
 */
const CHARS_PER_TOKEN = 4;

export interface ChunkingOptions {
  chunkTokens: number;
  overlapTokens: number;
}

/** Splits text into pieces no longer than `max` characters, preferring the coarsest boundary. */
function pieces(text: string, max: number): string[] {
  const out: string[] = [];
  const split = (segment: string, level: number) => {
    if (segment.length <= max) {
      if (segment.length > 0) out.push(segment);
      return;
    }
    const boundaries = [/(?<=\n\s*\n)/, /(?<=[.!?。]\s+)/, /(?<=\s)/];
    if (level >= boundaries.length) {
      for (let i = 0; i < segment.length; i += max) out.push(segment.slice(i, i + max));
      return;
    }
    for (const part of segment.split(boundaries[level]!)) split(part, level + 1);
  };
  split(text, 0);
  return out;
}

/** The end of a chunk, at most `max` characters, starting at a sentence (else word) boundary. */
function overlapTail(text: string, max: number): string {
  if (max <= 0) return '';
  const window = text.slice(Math.max(0, text.length - max));
  const sentence = /[.!?。]\s+/.exec(window);
  const word = /\s+/.exec(window);
  const from = sentence && sentence.index + sentence[0].length < window.length ? sentence.index + sentence[0].length : word ? word.index + word[0].length : 0;
  return window.slice(from);
}

export function chunkText(text: string, { chunkTokens, overlapTokens }: ChunkingOptions): string[] {
  const maxChars = chunkTokens * CHARS_PER_TOKEN;
  const overlapChars = Math.min(overlapTokens * CHARS_PER_TOKEN, Math.floor(maxChars / 2));
  const chunks: string[] = [];
  let current: string[] = [];
  let size = 0;
  let fresh = 0; // characters in `current` that are not overlap
  const flush = () => {
    if (fresh === 0) return;
    const text = current.join('');
    chunks.push(text.trim());
    const tail = overlapTail(text, overlapChars);
    current = tail ? [tail] : [];
    size = tail.length;
    fresh = 0;
  };
  for (const piece of pieces(text, maxChars - overlapChars)) {
    if (size + piece.length > maxChars) flush();
    current.push(piece);
    size += piece.length;
    fresh += piece.length;
  }
  flush();
  return chunks.filter((c) => c.length > 0);
}
