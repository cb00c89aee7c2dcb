/**
 * Text helpers shared by the evaluators and their features: the prompt being answered, refusal and
 * hedging phrases, final-answer extraction, JSON extraction. No I/O.
 */
export function lastUserMessage(messages: { role: string; content: string }[]): string {
  for (let i = messages.length - 1; i >= 0; i--) if (messages[i]!.role === 'user') return messages[i]!.content;
  return messages[messages.length - 1]?.content ?? '';
}

export const REFUSAL_RE =
  /\b(I(?:'m| am) (?:sorry|unable|not able)|I can(?:not|'t) (?:help|assist|provide|comply|answer|do that)|as an AI(?: language model)?|I(?:'m| am) not (?:comfortable|allowed|permitted)|I (?:must|have to) (?:decline|refuse)|I won't be able)\b/i;

export const HEDGE_RE =
  /\b(I(?:'m| am) not (?:sure|certain)|I think|I believe|probably|possibly|might be|may be|it seems|it appears|approximately|roughly|however|actually|wait|let me re-?(?:check|calculate|think)|on second thought|I apologi[sz]e|my mistake|correction)\b/gi;

export function isRefusal(answer: string): boolean {
  // Only the opening counts: a long answer that mentions "I cannot" in passing is not a refusal.
  return REFUSAL_RE.test(answer.slice(0, 300));
}

export function countMatches(text: string, re: RegExp): number {
  const global = re.flags.includes('g') ? re : new RegExp(re.source, re.flags + 'g');
  let n = 0;
  for (const _ of text.matchAll(global)) n++;
  return n;
}

const NUMBER_SRC = String.raw`-?\$?\d[\d,]*(?:\.\d+)?`;

/** Parses "1,234.5", "$12", "-3" → number; null when not a number. */
export function parseNumber(text: string): number | null {
  const cleaned = text.replace(/[$,\s]/g, '').replace(/\.$/, '');
  if (!/^-?\d+(?:\.\d+)?$/.test(cleaned)) return null;
  const n = Number(cleaned);
  return Number.isFinite(n) ? n : null;
}

export interface FinalAnswer {
  /** Normalised final answer used to compare samples ("18", "B", or lower-cased last line). */
  value: string;
  /** How it was found: an explicit marker ("#### 18", "The answer is", \boxed{}) is stronger. */
  explicit: boolean;
  numeric: number | null;
}

/** Extracts the final answer an answer commits to. */
export function extractFinalAnswer(answer: string): FinalAnswer | null {
  const text = answer.trim();
  if (!text) return null;
  const markers = [
    new RegExp(String.raw`####\s*(${NUMBER_SRC})`),
    new RegExp(String.raw`\\boxed\{\s*(${NUMBER_SRC})\s*\}`),
    new RegExp(String.raw`(?:final answer|the answer|answer)\s*(?:is|:|=)\s*\**\s*(${NUMBER_SRC})`, 'i'),
  ];
  for (const re of markers) {
    const all = [...text.matchAll(new RegExp(re.source, re.flags + 'g'))];
    const m = all[all.length - 1];
    const n = m?.[1] ? parseNumber(m[1]) : null;
    if (n !== null) return { value: String(n), explicit: true, numeric: n };
  }
  const choice = /(?:answer|option)\s*(?:is|:)?\s*\(?([A-E])\)?(?![a-z])/i.exec(text) ?? /^\(?([A-E])[).:]?(?:\s|$)/.exec(text);
  if (choice?.[1]) return { value: choice[1].toUpperCase(), explicit: true, numeric: null };
  const numbers = [...text.matchAll(new RegExp(NUMBER_SRC, 'g'))];
  const lastNum = numbers[numbers.length - 1];
  const n = lastNum ? parseNumber(lastNum[0]) : null;
  if (n !== null && text.length < 4000) return { value: String(n), explicit: false, numeric: n };
  const lines = text
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  const last = (lines[lines.length - 1] ?? text)
    .toLowerCase()
    .replace(/[^a-z0-9 ]/g, '')
    .replace(/\s+/g, ' ')
    .trim();
  return { value: last.slice(0, 200), explicit: false, numeric: null };
}

/** Does the prompt ask for JSON output (when no response_format says so)? */
export function promptAsksForJson(prompt: string): boolean {
  return /\b(?:in|as|return|output|respond with|reply with|format(?:ted)? as)\s+(?:valid\s+|a\s+|an\s+)?JSON\b/i.test(prompt);
}

/** Parses the JSON an answer holds, tolerating a ```json fence around it. */
export function parseJsonAnswer(answer: string): { ok: true; value: unknown } | { ok: false } {
  const fenced = /```(?:json)?\s*\n?([\s\S]*?)```/i.exec(answer);
  const body = (fenced?.[1] ?? answer).trim();
  try {
    return { ok: true, value: JSON.parse(body) };
  } catch {
    return { ok: false };
  }
}
