/**
 * The API keys the API accepts and what each may do: the keys of `server.api_keys_env` (the quick
 * start; tier `keys.env_tier`) and the hashed keys file of `npm run keys` (re-read when it
 * changes, so added and revoked keys apply within a second, in every API process). Keys are
 * compared by SHA-256 digest; the plaintext is never stored.
 */
import { existsSync, statSync } from 'node:fs';
import { keyLimitsProblems, type CascadeConfig } from '../config/load.js';
import type { KeyLimits } from '../config/schema.js';
import { keyIdOf, readKeysFile, sha256Hex, type KeyEntry } from '../common/api-keys.js';
import type { KeyBudgetLimits } from '../common/budget-messages.js';

export interface CallerKey {
  id: string;
  name: string;
  tier: string;
  /** The tier's limits with the key's own over them. */
  limits: KeyLimits;
}

const RECHECK_MS = 1000;

export class KeyStore {
  private fileKeys = new Map<string, CallerKey>();
  private fileExists = false;
  private fileStamp = '';
  private checkedAt = 0;
  private readonly envKeys = new Map<string, CallerKey>();

  constructor(
    private readonly config: CascadeConfig,
    env: NodeJS.ProcessEnv,
    private readonly logger?: { error: (o: object, m: string) => void },
  ) {
    const name = config.raw.server.api_keys_env;
    const tier = config.raw.keys.env_tier;
    for (const key of (name ? (env[name] ?? '') : '').split(',').map((k) => k.trim())) {
      if (!key) continue;
      const digest = sha256Hex(key);
      this.envKeys.set(digest, { id: keyIdOf(digest), name: `${name} #${this.envKeys.size + 1}`, tier, limits: this.tierLimits(tier) });
    }
    this.load(); // a bad keys file stops the API at start, naming the problem
  }

  /** Keys are required once any is configured (an existing keys file counts, even with every key revoked). */
  get required(): boolean {
    this.refresh();
    return this.envKeys.size > 0 || this.fileExists;
  }

  /** The key a presented secret is, or null when it is no valid key. */
  lookup(presented: string): CallerKey | null {
    this.refresh();
    const digest = sha256Hex(presented);
    return this.fileKeys.get(digest) ?? this.envKeys.get(digest) ?? null;
  }

  /** A key by its id, as it is now (its tier's and its own limits); null when revoked or gone. */
  byId(keyId: string): CallerKey | null {
    this.refresh();
    for (const key of [...this.fileKeys.values(), ...this.envKeys.values()]) if (key.id === keyId) return key;
    return null;
  }

  private tierLimits(tier: string): KeyLimits {
    return this.config.raw.keys.tiers[tier] ?? {};
  }

  private merged(entry: KeyEntry): KeyLimits {
    const tier = this.tierLimits(entry.tier);
    const own = entry.limits ?? {};
    return {
      ...tier,
      ...own,
      ...((tier.budget_usd || own.budget_usd) && { budget_usd: { ...tier.budget_usd, ...own.budget_usd } }),
      ...((tier.rate_limit || own.rate_limit) && { rate_limit: { ...tier.rate_limit, ...own.rate_limit } }),
    };
  }

  /** Re-reads the keys file when its size or time changed (at most once a second). */
  private refresh(): void {
    const now = Date.now();
    if (now - this.checkedAt < RECHECK_MS) return;
    this.checkedAt = now;
    const path = this.config.keysFilePath;
    let stamp = '';
    try {
      const st = statSync(path);
      stamp = `${st.mtimeMs}/${st.size}`;
    } catch {
      // no file: no file keys
    }
    if (stamp === this.fileStamp) return;
    this.fileStamp = stamp;
    try {
      this.load();
    } catch (err) {
      // A file broken while the API runs (a hand edit): keep the keys it had.
      this.logger?.error({ err: (err as Error).message }, 'keys file not reloaded');
    }
  }

  private load(): void {
    const path = this.config.keysFilePath;
    const next = new Map<string, CallerKey>();
    for (const entry of readKeysFile(path).keys) {
      if (entry.revoked_at) continue;
      if (!this.config.raw.keys.tiers[entry.tier]) throw new Error(`keys file ${path}: key ${entry.id} names unknown tier "${entry.tier}"`);
      const problems = keyLimitsProblems(this.config.raw, this.config.policies, entry.limits ?? {}, `keys file ${path}: ${entry.id}.limits`);
      if (problems.length > 0) throw new Error(problems.join('; '));
      next.set(entry.sha256, { id: entry.id, name: entry.name, tier: entry.tier, limits: this.merged(entry) });
    }
    this.fileKeys = next;
    this.fileExists = existsSync(path);
  }
}

/** A key's limits as its budget workflow applies them; null when it has neither budget nor rate limit. */
export function budgetLimitsOf(key: Pick<CallerKey, 'limits'>): KeyBudgetLimits | null {
  const { budget_usd: b, rate_limit: r } = key.limits;
  const limits: KeyBudgetLimits = {
    ...(b?.day !== undefined && { dayUsd: b.day }),
    ...(b?.month !== undefined && { monthUsd: b.month }),
    ...(r?.requests_per_minute !== undefined && { requestsPerMinute: r.requests_per_minute }),
    ...(r?.tokens_per_minute !== undefined && { tokensPerMinute: r.tokens_per_minute }),
  };
  return Object.keys(limits).length > 0 ? limits : null;
}
