/**
 * The LLM-judge prompt and verdict parser. PURE and dependency-free: the workflow imports
 * `buildJudgeMessages` to call the judge model, so nothing from Node or npm may be imported here.
 */
export interface JudgeMessage {
  role: 'system' | 'user';
  content: string;
}

/** Bounds what one judge call can cost: long conversations and answers are cut in the middle. */
const MAX_CHARS = 12_000;

function clip(text: string, max: number): string {
  if (text.length <= max) return text;
  const half = Math.floor((max - 20) / 2);
  return `${text.slice(0, half)}\n[... cut ...]\n${text.slice(text.length - half)}`;
}

const SYSTEM = [
  'You are a strict grader. Judge whether the assistant answer below correctly and fully answers',
  "the user's last message. Check facts, arithmetic and the requested format. Do not reward length.",
  // The rating comes first: the workflow caps the judge's reply at a few tokens to bound its cost.
  'Reply with the rating first, in exactly this form: "Rating: [[N]]" where N is an integer from 1',
  '(wrong or useless) to 10 (correct and complete); you may add one short sentence after it.',
].join(' ');

export function buildJudgeMessages(input: { messages: { role: string; content: string }[]; answer: string }): JudgeMessage[] {
  const conversation = input.messages
    .filter((m) => m.role !== 'system')
    .map((m) => `[${m.role}]\n${m.content}`)
    .join('\n\n');
  const user = [
    '<conversation>',
    clip(conversation, MAX_CHARS),
    '</conversation>',
    '',
    '<assistant_answer>',
    clip(input.answer, MAX_CHARS),
    '</assistant_answer>',
    '',
    'Rate the assistant answer.',
  ].join('\n');
  return [
    { role: 'system', content: SYSTEM },
    { role: 'user', content: user },
  ];
}

/**
 * Reads the judge's rating: `Rating: [[N]]` (preferred), else `N/10` or a bare `Rating: N`.
 * Returns a score in [0, 1] ((N-1)/9), or null when no rating can be found.
 */
export function parseJudgeVerdict(text: string): number | null {
  const patterns = [/\[\[\s*(\d+(?:\.\d+)?)\s*\]\]/, /(\d+(?:\.\d+)?)\s*\/\s*10\b/, /rating\s*[:=]\s*(\d+(?:\.\d+)?)/i];
  for (const p of patterns) {
    const matches = [...text.matchAll(new RegExp(p.source, p.flags + 'g'))];
    const last = matches[matches.length - 1];
    if (!last?.[1]) continue;
    const n = Number(last[1]);
    if (Number.isFinite(n) && n >= 1 && n <= 10) return (n - 1) / 9;
  }
  return null;
}
