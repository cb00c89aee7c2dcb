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

export function chunkText(text: string, { chunkTokens, overlapTokens }: ChunkingOptions): string[] {
  const maxChars = chunkTokens * CHARS_PER_TOKEN;
  const overlapChars = Math.min(overlapTokens * CHARS_PER_TOKEN, Math.floor(maxChars / 2));
  const chunks: string[] = [];
  let current: string[] = [];
  let size = 0;
  let fresh = 0; // characters in `current` that are not overlap
  const flush = () => {
    if (fresh === 0) return;
    chunks.push(current.join('').trim());
    // Carry the last pieces (up to the overlap) into the next chunk.
    const tail: string[] = [];
    let tailSize = 0;
    for (let i = current.length - 1; i >= 0 && tailSize + current[i]!.length <= overlapChars; i--) {
      tail.unshift(current[i]!);
      tailSize += current[i]!.length;
    }
    current = tail;
    size = tailSize;
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
