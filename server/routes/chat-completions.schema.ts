/**
 * The accepted subset of OpenAI's chat completion request. Unknown fields are ignored, as most
 * OpenAI-compatible servers do; fields that would change the answer's shape and that Cascade
 * cannot honour yet (tools, n > 1) are refused with a clear message rather than ignored.
 */
import { z } from 'zod';

const textPart = z.object({ type: z.literal('text'), text: z.string() });

const message = z.object({
  role: z.enum(['system', 'user', 'assistant', 'tool', 'developer']),
  content: z.union([z.string(), z.array(textPart).min(1)]).nullable(),
  name: z.string().max(256).optional(),
});

const responseFormat = z.discriminatedUnion('type', [
  z.object({ type: z.literal('text') }),
  z.object({ type: z.literal('json_object') }),
  z.object({
    type: z.literal('json_schema'),
    json_schema: z.object({ name: z.string().optional(), schema: z.unknown().optional(), strict: z.boolean().nullish() }),
  }),
]);

export const chatCompletionRequestSchema = z.object({
  model: z.string().min(1).max(256),
  messages: z.array(message).min(1).max(2048),
  stream: z.boolean().nullish(),
  stream_options: z.object({ include_usage: z.boolean().optional() }).nullish(),
  temperature: z.number().min(0).max(2).nullish(),
  top_p: z.number().min(0).max(1).nullish(),
  max_tokens: z.number().int().positive().nullish(),
  max_completion_tokens: z.number().int().positive().nullish(),
  stop: z.union([z.string(), z.array(z.string()).max(4)]).nullish(),
  n: z.literal(1, { message: 'Only n=1 is supported' }).nullish(),
  seed: z.number().int().nullish(),
  presence_penalty: z.number().min(-2).max(2).nullish(),
  frequency_penalty: z.number().min(-2).max(2).nullish(),
  response_format: responseFormat.nullish(),
  logprobs: z.boolean().nullish(),
  top_logprobs: z.number().int().min(0).max(20).nullish(),
  user: z.string().max(512).optional(),
  tools: z.undefined({ message: 'tools are not supported by Cascade yet' }).optional(),
  functions: z.undefined({ message: 'functions are not supported by Cascade yet' }).optional(),
  /** Cascade extension: per-request limits, within the policy's. */
  cascade: z
    .object({
      deadline_ms: z.number().int().positive().optional(),
      max_cost_usd: z.number().positive().optional(),
      /** With `stream: true`: stream drafts of evaluated steps too, marked in each chunk (docs: README). */
      stream_drafts: z.boolean().optional(),
    })
    .optional(),
});

export type ChatCompletionRequest = z.infer<typeof chatCompletionRequestSchema>;
