/**
 * The body of POST /v1/documents, as JSON (`text`) or as multipart form fields next to a `file`
 * (where arrays and the schema arrive as JSON strings). The task's own requirements (a schema that
 * compiles, labels, questions) are checked by the route.
 */
import { z } from 'zod';
import { DOCUMENT_TASKS } from '../../workflows/document-types.js';

/** Multipart fields are strings: JSON-looking ones are parsed, a comma list is split for arrays. */
const fromForm = <T extends z.ZodType>(schema: T, list = false) =>
  z.preprocess((v) => {
    if (typeof v !== 'string') return v;
    const t = v.trim();
    if (/^[[{]/.test(t)) {
      try {
        return JSON.parse(t);
      } catch {
        return v;
      }
    }
    return list
      ? t
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean)
      : v;
  }, schema);

export const documentRequestSchema = z.object({
  task: z.enum(DOCUMENT_TASKS, { error: (issue) => `unknown task ${JSON.stringify(issue.input)}; expected one of ${DOCUMENT_TASKS.join(', ')}` }),
  text: z.string().optional(),
  /** `cascade` (the default policy), `cascade:<policy>`, or a model, as for chat. */
  model: z.string().min(1).max(256).default('cascade'),
  instructions: z.string().max(4000).optional(),
  schema: fromForm(z.record(z.string(), z.unknown())).optional(),
  labels: fromForm(z.array(z.string().min(1).max(200)).min(2).max(100), true).optional(),
  questions: fromForm(z.array(z.string().min(1).max(2000)).min(1).max(50)).optional(),
  max_output_tokens: z.coerce.number().int().min(1).max(8192).optional(),
  webhook_url: z.string().max(2048).optional(),
  /** A name shown in the Temporal UI (the file name for uploads). */
  name: z.string().max(200).optional(),
});

export type DocumentRequest = z.infer<typeof documentRequestSchema>;
