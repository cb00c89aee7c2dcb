/**
 * Server-sent events in OpenAI's chat.completion.chunk format: a role chunk, content chunks, a
 * finish chunk, an optional usage chunk, then `data: [DONE]`. For now the accepted answer is
 * streamed once the cascade has accepted it.
 */
import type { Response } from 'express';
import type { RenderedCompletion } from './routes/chat-completions.js';

/** Content split on token boundaries when logprobs give them, else into small word groups. */
function pieces(completion: RenderedCompletion): string[] {
  const choice = completion.choices[0]!;
  const tokens = choice.logprobs?.content?.map((t) => t.token);
  if (tokens && tokens.join('') === choice.message.content) return tokens;
  return choice.message.content.match(/\S*\s*/g)?.filter(Boolean) ?? [];
}

export function writeCompletionStream(res: Response, completion: RenderedCompletion, includeUsage: boolean): void {
  res.status(200);
  res.setHeader('content-type', 'text/event-stream; charset=utf-8');
  res.setHeader('cache-control', 'no-cache');
  res.setHeader('connection', 'keep-alive');
  const base = { id: completion.id, object: 'chat.completion.chunk', created: completion.created, model: completion.model, system_fingerprint: null };
  const send = (data: unknown) => res.write(`data: ${JSON.stringify(data)}\n\n`);
  const choice = completion.choices[0]!;
  const logprobsOn = choice.logprobs !== null;
  send({
    ...base,
    choices: [{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }],
    ...(includeUsage && { usage: null }),
  });
  const parts = pieces(completion);
  parts.forEach((content, i) => {
    const lp = logprobsOn ? { content: choice.logprobs?.content?.[i] ? [choice.logprobs.content[i]] : [] } : null;
    send({ ...base, choices: [{ index: 0, delta: { content }, logprobs: lp, finish_reason: null }], ...(includeUsage && { usage: null }) });
  });
  send({
    ...base,
    choices: [{ index: 0, delta: {}, logprobs: null, finish_reason: choice.finish_reason }],
    ...(includeUsage && { usage: null }),
    cascade: completion.cascade,
  });
  if (includeUsage) send({ ...base, choices: [], usage: completion.usage });
  res.end('data: [DONE]\n\n');
}
