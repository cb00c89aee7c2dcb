/** Shared by the document test files: a synthetic document, and starting and polling jobs over HTTP. */
import assert from 'node:assert/strict';
import type { Stack } from '../helpers/stack.js';

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Paragraphs of distinct sentences: `paragraphs` × ~60 tokens. */
export function documentText(paragraphs: number, seed = 'doc'): string {
  return Array.from({ length: paragraphs }, (_, p) =>
    Array.from(
      { length: 4 },
      (_, s) =>
        `In ${seed} section ${p + 1}, finding ${s + 1} reports that metric ${(p * 7 + s * 3) % 97} rose for team ${String.fromCharCode(65 + ((p + s) % 26))}.`,
    ).join(' '),
  ).join('\n\n');
}

export function documentsClient(stack: Stack) {
  const post = (body: unknown, headers: Record<string, string> = {}) =>
    fetch(`${stack.apiUrl}/documents`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });

  const start = async (body: Record<string, unknown>, headers: Record<string, string> = {}): Promise<string> => {
    const res = await post({ model: 'cascade:simulated', ...body }, headers);
    const json = (await res.json()) as any;
    assert.equal(res.status, 202, JSON.stringify(json));
    assert.match(json.id, /^doc-/);
    return json.id;
  };

  const job = async (id: string) => (await (await fetch(`${stack.apiUrl}/documents/${id}`)).json()) as any;

  const waitFor = async (id: string, done: (j: any) => boolean, timeoutMs = 60_000): Promise<any> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const j = await job(id).catch(() => ({ status: 'unreachable' }));
      if (done(j)) return j;
      if (Date.now() > deadline) throw new Error(`job ${id} still ${j.status}: ${JSON.stringify(j).slice(0, 400)}`);
      await sleep(100);
    }
  };

  /** Model calls the farm saw for a job's unit workflows, by unit workflow id. */
  const callsByUnit = async (id: string): Promise<Map<string, { model: string | null; outcome: string }[]>> => {
    const byUnit = new Map<string, { model: string | null; outcome: string }[]>();
    for (const a of await stack.farmLog()) {
      if (!a.request_id?.startsWith(`${id}-`)) continue;
      const wf = a.request_id.split('/')[0]!;
      byUnit.set(wf, [...(byUnit.get(wf) ?? []), { model: a.model, outcome: a.outcome }]);
    }
    return byUnit;
  };

  /** No unit workflow completed the same model call twice (a cut call may be retried). */
  const assertEachCallPaidOnce = async (id: string) => {
    const calls = await callsByUnit(id);
    for (const [wf, c] of calls) {
      for (const model of new Set(c.map((x) => x.model)))
        assert.ok(c.filter((x) => x.model === model && x.outcome === 'ok').length <= 1, `${wf}: ${JSON.stringify(c)}`);
    }
    return calls;
  };

  /** Request ids of the model calls of a job the farm has answered completely so far. */
  const completedCalls = async (id: string): Promise<Set<string>> =>
    new Set((await stack.farmLog()).filter((a) => a.outcome === 'ok' && a.request_id?.startsWith(`${id}-`)).map((a) => a.request_id!));

  /**
   * After a crash: a call completed before it (`completedBefore`) was never made again; a call in
   * flight at the instant of the kill (answered, its result not yet recorded by Temporal) was made
   * at most once more, and at most `maxRepeated` calls were.
   */
  const assertCompletedCallsNotRepeated = async (id: string, completedBefore: Set<string>, maxRepeated: number) => {
    const ok = new Map<string, number>();
    for (const a of await stack.farmLog()) if (a.outcome === 'ok' && a.request_id?.startsWith(`${id}-`)) ok.set(a.request_id, (ok.get(a.request_id) ?? 0) + 1);
    for (const r of completedBefore) assert.equal(ok.get(r), 1, `${r} was called again after it completed`);
    const repeated = [...ok].filter(([, n]) => n > 1);
    for (const [r, n] of repeated) assert.ok(!completedBefore.has(r) && n === 2, `${r}: ${n} calls`);
    assert.ok(repeated.length <= maxRepeated, `${repeated.length} calls repeated`);
  };

  return { post, start, job, waitFor, callsByUnit, assertEachCallPaidOnce, completedCalls, assertCompletedCallsNotRepeated };
}

export const finished = (j: any) => j.status === 'completed' || j.status === 'cancelled' || j.status === 'failed';

/** A valid one-page PDF with the given lines of text (Helvetica), built by hand. */
export function minimalPdf(lines: string[]): Buffer {
  const esc = (s: string) => s.replace(/[\\()]/g, (c) => `\\${c}`);
  const content = `BT /F1 12 Tf 72 720 Td 14 TL ${lines.map((l) => `(${esc(l)}) Tj T*`).join(' ')} ET`;
  const objects = [
    '<< /Type /Catalog /Pages 2 0 R >>',
    '<< /Type /Pages /Kids [3 0 R] /Count 1 >>',
    '<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>',
    `<< /Length ${Buffer.byteLength(content)} >>\nstream\n${content}\nendstream`,
    '<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>',
  ];
  let out = '%PDF-1.4\n';
  const offsets: number[] = [];
  objects.forEach((o, i) => {
    offsets.push(Buffer.byteLength(out));
    out += `${i + 1} 0 obj\n${o}\nendobj\n`;
  });
  const xref = Buffer.byteLength(out);
  out += `xref\n0 ${objects.length + 1}\n0000000000 65535 f \n${offsets.map((o) => `${String(o).padStart(10, '0')} 00000 n \n`).join('')}`;
  out += `trailer\n<< /Size ${objects.length + 1} /Root 1 0 R >>\nstartxref\n${xref}\n%%EOF\n`;
  return Buffer.from(out, 'latin1');
}
