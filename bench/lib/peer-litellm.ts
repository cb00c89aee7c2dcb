/**
 * LiteLLM proxy (PyPI), a popular non-durable OpenAI-compatible gateway, as the overhead
 * benchmark's peer: installed into .tools/litellm-venv on first use, configured (in a temp dir)
 * with one model that points at the same farm pool the other paths use, listening on loopback.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { REPO_ROOT } from '../../config/load.js';
import { keepTail, run, stopProcess } from '../../scripts/cluster/exec.js';
import { freePort } from '../../scripts/temporal-dev-server.js';

/** 1.107.0 was a compromised release; releases from 1.108 on want a `litellm-proxy` package PyPI does not have. */
export const LITELLM_VERSION = '1.106.12';
const VENV = join(REPO_ROOT, '.tools', 'litellm-venv');
const PYTHON = join(VENV, 'bin', 'python');

export interface Peer {
  /** OpenAI base URL (`http://127.0.0.1:<port>/v1`). */
  baseUrl: string;
  apiKey: string;
  pid: number;
  stop(): Promise<void>;
}

async function installedVersion(): Promise<string | null> {
  if (!existsSync(PYTHON)) return null;
  return run(PYTHON, ['-c', 'import importlib.metadata as m; print(m.version("litellm"))']).then(
    (v) => v.trim(),
    () => null,
  );
}

/** Installs `litellm[proxy]` into the project's venv unless that version is there already. */
export async function ensureLiteLLM(say: (s: string) => void): Promise<void> {
  if ((await installedVersion()) === LITELLM_VERSION) return;
  say(`installing LiteLLM proxy ${LITELLM_VERSION} from PyPI into ${VENV} (once) ...`);
  if (!existsSync(PYTHON)) await run('python3', ['-m', 'venv', VENV]);
  await run(PYTHON, ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', `litellm[proxy]==${LITELLM_VERSION}`]);
}

/** Starts the proxy with `workers` worker processes, serving `model` from `upstreamBaseUrl`. */
export async function startLiteLLM(opts: { workers: number; model: string; upstreamBaseUrl: string; dir: string }): Promise<Peer> {
  const port = await freePort();
  const configFile = join(opts.dir, `litellm-${opts.workers}w.yaml`);
  const apiKey = `sk-bench-${randomBytes(16).toString('hex')}`;
  writeFileSync(
    configFile,
    stringify({
      model_list: [{ model_name: opts.model, litellm_params: { model: `openai/${opts.model}`, api_base: opts.upstreamBaseUrl, api_key: 'bench' } }],
      litellm_settings: { telemetry: false },
      // It refuses to start without one; with no database behind it the check is a comparison.
      general_settings: { master_key: apiKey },
    }),
  );
  const args = ['-m', 'litellm.proxy.proxy_cli', '--config', configFile, '--host', '127.0.0.1', '--port', String(port), '--num_workers', String(opts.workers)];
  // A worker needs ~10-30 s to import the proxy on a busy 2-core machine; uvicorn's default 5 s
  // health check kills and restarts it forever.
  args.push('--timeout_worker_healthcheck', '180');
  // No network here: the proxy must not fetch its model price map; only errors in its log.
  const env = { ...process.env, LITELLM_LOCAL_MODEL_COST_MAP: 'True', LITELLM_LOG: 'ERROR', LITELLM_TELEMETRY: 'False' };
  const child = spawn(PYTHON, args, { env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  const stdout = keepTail(child.stdout);
  const stderr = keepTail(child.stderr);
  // Its own process group: the uvicorn workers are children, and SIGTERM to the group stops them all.
  const stop = async () => {
    try {
      process.kill(-child.pid!, 'SIGTERM');
    } catch {
      // already gone
    }
    await stopProcess(child, 'SIGTERM', 10_000);
  };
  const baseUrl = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 180_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`LiteLLM proxy exited (${child.exitCode}): ${stderr().trim() || stdout().trim()}`);
    const ok = await fetch(`${baseUrl}/health/liveliness`, { signal: AbortSignal.timeout(2000) }).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`LiteLLM proxy did not answer on ${baseUrl} within 180 s: ${stderr().trim() || stdout().trim()}`);
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  return { baseUrl: `${baseUrl}/v1`, apiKey, pid: child.pid!, stop };
}
