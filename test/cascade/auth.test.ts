/** API keys: with keys configured, a request needs one; keys never appear in responses. */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI, { APIError } from 'openai';
import { startStack, type Stack } from '../helpers/stack.js';

let stack: Stack;
before(async () => {
  process.env.CASCADE_TEST_KEYS = 'key-one, key-two';
  stack = await startStack({ configure: (raw) => (raw.server.api_keys_env = 'CASCADE_TEST_KEYS') });
});
after(async () => {
  await stack?.close();
});

const client = (apiKey: string) => new OpenAI({ baseURL: stack.apiUrl, apiKey, maxRetries: 0 });

describe('API keys', () => {
  it('refuses a missing or wrong key with an OpenAI-shaped 401', async () => {
    const res = await fetch(`${stack.apiUrl}/models`);
    assert.equal(res.status, 401);
    assert.equal(((await res.json()) as any).error.code, 'missing_api_key');
    await assert.rejects(client('wrong').models.list(), (err: unknown) => err instanceof APIError && err.status === 401 && err.code === 'invalid_api_key');
  });

  it('accepts any configured key', async () => {
    const models = await client('key-two').models.list();
    assert.ok(models.data.length > 0);
  });

  it('leaves /healthz open for load balancers', async () => {
    assert.equal((await fetch(stack.apiUrl.replace(/\/v1$/, '/healthz'))).status, 200);
  });
});
