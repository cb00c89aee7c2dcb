/**
 * Command-line client of document jobs: start one from a file and watch its progress, watch one
 * again, or cancel it (USAGE below, `npm run doc -- --help`).
 */
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { exitWithUsage, parseCli } from '../common/cli.js';

const USAGE = `usage:
  npm run doc -- report.md --task summarize                    start a job, watch it, print the result
  npm run doc -- data.txt --task extract --schema schema.json
  npm run doc -- notes.txt --task classify --labels bug,feature,question
  npm run doc -- paper.md --task qa --question "Who wrote it?" --question "When?"
  npm run doc -- --watch doc-…                                 watch a job again (after Ctrl-C, or from elsewhere)
  npm run doc -- --cancel doc-…

Options: --api (default $CASCADE_API_URL or http://127.0.0.1:8080/v1), --model (cascade,
cascade:<policy> or a model), --instructions, --json (print the whole result document).
The API key comes from $CASCADE_API_KEY. Ctrl-C stops watching; the job goes on.`;

interface Job {
  id: string;
  status: string;
  phase?: string;
  chunks?: { done: number; failed: number; total: number };
  escalations?: number;
  cost_usd?: number;
  baseline_cost_usd?: number;
  elapsed_ms?: number;
  eta_ms?: number | null;
  result?: Record<string, any> | null;
  error?: { message: string; code?: string };
}

const { values, positionals } = parseCli(USAGE, {
  allowPositionals: true,
  options: {
    task: { type: 'string', default: 'summarize' },
    api: { type: 'string', default: process.env.CASCADE_API_URL ?? 'http://127.0.0.1:8080/v1' },
    model: { type: 'string' },
    schema: { type: 'string' },
    labels: { type: 'string' },
    question: { type: 'string', multiple: true },
    instructions: { type: 'string' },
    watch: { type: 'string' },
    cancel: { type: 'string' },
    json: { type: 'boolean', default: false },
  },
});

const api = values.api!.replace(/\/$/, '');
const headers: Record<string, string> = process.env.CASCADE_API_KEY ? { authorization: `Bearer ${process.env.CASCADE_API_KEY}` } : {};
const tty = process.stderr.isTTY === true;

async function call(method: string, path: string, body?: FormData): Promise<any> {
  const res = await fetch(`${api}${path}`, { method, headers, body });
  const json = (await res.json().catch(() => ({}))) as any;
  if (!res.ok) throw new Error(`${res.status} ${json?.error?.code ?? ''}: ${json?.error?.message ?? res.statusText}`);
  return json;
}

async function startJob(file: string): Promise<string> {
  const form = new FormData();
  form.set('task', values.task!);
  if (values.model) form.set('model', values.model);
  if (values.instructions) form.set('instructions', values.instructions);
  if (values.schema) form.set('schema', readFileSync(values.schema, 'utf8'));
  if (values.labels) form.set('labels', values.labels);
  if (values.question) form.set('questions', JSON.stringify(values.question));
  const type = /\.(md|markdown)$/i.test(file) ? 'text/markdown' : 'text/plain';
  form.set('file', new Blob([readFileSync(file)], { type }), basename(file));
  const job = await call('POST', '/documents', form);
  return job.id as string;
}

const seconds = (ms: number | null | undefined) =>
  ms == null ? '?' : ms < 60_000 ? `${Math.round(ms / 1000)}s` : `${Math.floor(ms / 60_000)}m${String(Math.round((ms % 60_000) / 1000)).padStart(2, '0')}s`;

function progressLine(job: Job): string {
  const c = job.chunks ?? { done: 0, failed: 0, total: 0 };
  const width = 30;
  const filled = c.total ? Math.round((width * c.done) / c.total) : 0;
  const bar = `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}]`;
  const saved = job.baseline_cost_usd ? ` (all on the strongest model: $${job.baseline_cost_usd.toFixed(4)})` : '';
  return `${bar} ${c.done}/${c.total || '?'} chunks${c.failed ? `, ${c.failed} failed` : ''} · ${job.phase ?? job.status} · ${job.escalations ?? 0} escalations · $${(job.cost_usd ?? 0).toFixed(4)}${saved} · ${seconds(job.elapsed_ms)} elapsed, eta ${seconds(job.eta_ms)}${job.status === 'paused' ? ' · PAUSED' : ''}`;
}

async function watch(id: string): Promise<Job> {
  let lastPrinted = 0;
  for (;;) {
    const job = (await call('GET', `/documents/${id}`)) as Job;
    const done = ['completed', 'cancelled', 'failed'].includes(job.status);
    if (tty) process.stderr.write(`\r\x1b[2K${progressLine(job)}`);
    else if (done || Date.now() - lastPrinted > 5000) {
      process.stderr.write(`${progressLine(job)}\n`);
      lastPrinted = Date.now();
    }
    if (done) {
      if (tty) process.stderr.write('\n');
      return job;
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}

function printResult(job: Job): void {
  const r = job.result;
  if (values.json || !r) return void process.stdout.write(`${JSON.stringify(job.result ?? job, null, 2)}\n`);
  const out: string[] = [];
  switch (r.task) {
    case 'summarize':
      out.push(r.summary ?? '(no combined summary: the job did not finish)');
      break;
    case 'qa':
      out.push(r.answer ?? '(no final answer)', '', `cited chunks: ${r.cited_chunks?.join(', ') || 'none'}`);
      break;
    case 'classify':
      out.push(`overall: ${r.overall ?? '(none)'}`, `counts: ${JSON.stringify(r.counts)}`);
      break;
    case 'extract':
      out.push(JSON.stringify(r.merged, null, 2), `invalid chunks: ${r.invalid_chunks?.join(', ') || 'none'}`);
      break;
  }
  out.push(
    '',
    `${job.status} · ${r.chunks.done}/${r.chunks.total} chunks · ${r.escalations} escalations · $${r.cost_usd.toFixed(6)} vs $${r.baseline_cost_usd.toFixed(6)} on the strongest model`,
  );
  process.stdout.write(`${out.join('\n')}\n`);
}

async function main(): Promise<number> {
  if (!values.watch && !values.cancel && positionals.length !== 1) exitWithUsage(USAGE, 'doc: give one file, --watch <id> or --cancel <id>');
  if (values.cancel) {
    const res = await call('DELETE', `/documents/${values.cancel}`);
    process.stderr.write(`job ${values.cancel}: ${res.status}\n`);
    return 0;
  }
  const id = values.watch ?? (await startJob(positionals[0]!));
  process.stderr.write(`job ${id}  (watch again: npm run doc -- --watch ${id}; cancel: npm run doc -- --cancel ${id})\n`);
  process.once('SIGINT', () => {
    process.stderr.write(`\nstopped watching; the job goes on. Resume with: npm run doc -- --watch ${id}\n`);
    process.exit(130);
  });
  const job = await watch(id);
  printResult(job);
  process.stderr.write(`job ${id}\n`);
  return job.status === 'completed' ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`\ndoc: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
