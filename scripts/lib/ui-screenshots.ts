/**
 * Screenshots of the Temporal UI for the docs, taken with Debian's chromium through playwright-core
 * while `npm start` runs: the workflow list and one workflow's page.
 * (playwright-core launches chromium with a fresh temporary profile of its own.)
 *
 *   node --import tsx scripts/lib/ui-screenshots.ts <workflow-id> [ui-url] [out-dir]
 */
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { REPO_ROOT } from '../../config/load.js';

async function run(): Promise<void> {
  const [workflowId, ui = 'http://127.0.0.1:8233', outDir = join(REPO_ROOT, 'docs', 'images')] = process.argv.slice(2);
  if (!workflowId) throw new Error('usage: ui-screenshots.ts <workflow-id> [ui-url] [out-dir]');
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1600, height: 1000 } });
    await page.goto(`${ui}/namespaces/default/workflows`, { waitUntil: 'networkidle' });
    await page.waitForSelector(`text=${workflowId}`, { timeout: 15_000 });
    await page.screenshot({ path: join(outDir, 'temporal-ui-workflows.png') });
    await page.goto(`${ui}/namespaces/default/workflows/${encodeURIComponent(workflowId)}`, { waitUntil: 'networkidle' });
    await page.waitForTimeout(1500); // the event timeline draws after the data arrives
    await page.screenshot({ path: join(outDir, 'temporal-ui-escalated-workflow.png'), fullPage: true });
  } finally {
    await browser.close();
  }
}

run().catch((err) => {
  console.error(err instanceof Error ? err.message : String(err));
  process.exit(1);
});
