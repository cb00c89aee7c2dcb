/**
 * Webhook targets: only http(s), only to hosts the config allows, and never to link-local or
 * cloud-metadata addresses (checked on the URL when the job is accepted, and again on the resolved
 * address before each call, so a DNS answer that changed in between cannot redirect the call).
 */
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';

export class WebhookRejected extends Error {
  override name = 'WebhookRejected';
}

/** `host` matches an entry `example.com` exactly, or `*.example.com` for any subdomain. */
function hostAllowed(host: string, allow: readonly string[]): boolean {
  const h = host.toLowerCase().replace(/^\[|\]$/g, '');
  return allow.some((entry) => {
    const e = entry.toLowerCase();
    return e.startsWith('*.') ? h.endsWith(e.slice(1)) && h.length > e.length - 1 : h === e;
  });
}

/** Link-local (incl. 169.254.169.254 metadata), unspecified, and the other well-known metadata addresses. */
export function forbiddenAddress(address: string): boolean {
  const a = address.toLowerCase();
  if (isIP(a) === 4) {
    const [x, y] = a.split('.').map(Number) as [number, number];
    return (x === 169 && y === 254) || x === 0 || a === '100.100.100.200';
  }
  if (isIP(a) === 6) {
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(a);
    if (mapped) return forbiddenAddress(mapped[1]!);
    return /^fe[89ab][0-9a-f]:/.test(a) || a === '::' || a === 'fd00:ec2::254';
  }
  return false;
}

/** Throws WebhookRejected with a reason the API can show; returns the parsed URL. */
export function checkWebhookUrl(raw: string, allowHosts: readonly string[]): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new WebhookRejected('webhook_url is not a valid URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new WebhookRejected('webhook_url must use http or https');
  if (url.username || url.password) throw new WebhookRejected('webhook_url must not carry credentials');
  const host = url.hostname.replace(/^\[|\]$/g, '');
  if (forbiddenAddress(host) || host.toLowerCase() === 'metadata.google.internal')
    throw new WebhookRejected(`webhook_url host ${host} is a link-local or metadata address`);
  if (!hostAllowed(host, allowHosts))
    throw new WebhookRejected(`webhook_url host ${host} is not allowed (documents.webhook_allow_hosts: ${allowHosts.join(', ') || 'none'})`);
  return url;
}

/** POSTs the body as JSON after checking the resolved addresses; throws on any non-2xx answer. */
export async function postWebhook(raw: string, allowHosts: readonly string[], body: unknown): Promise<void> {
  const url = checkWebhookUrl(raw, allowHosts);
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const addresses = isIP(host) ? [host] : (await lookup(host, { all: true })).map((a) => a.address);
  const bad = addresses.find(forbiddenAddress);
  if (bad) throw new WebhookRejected(`webhook host ${host} resolves to ${bad}, a link-local or metadata address`);
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'user-agent': 'cascade-documents' },
    body: JSON.stringify(body),
    redirect: 'manual', // a redirect could point anywhere: not followed
    signal: AbortSignal.timeout(10_000),
  });
  await res.arrayBuffer().catch(() => undefined);
  if (res.status < 200 || res.status >= 300) throw new Error(`webhook answered ${res.status}`);
}
