/**
 * npm run keys -- add|list|revoke: manages the hashed API keys file (config `keys.file`). A new
 * key is printed once and stored only as its SHA-256 digest; the API re-reads the file within a
 * second, so no restart is needed.
 */
import { keyLimitsSchema } from '../config/schema.js';
import { keyLimitsProblems, loadConfig } from '../config/load.js';
import { generateKey, keyIdOf, readKeysFile, sha256Hex, writeKeysFile } from '../common/api-keys.js';
import { exitWithUsage, parseCli } from '../common/cli.js';

const USAGE = `
usage: npm run keys -- add --name <name> [--tier <tier>] [limits]   print a new key (once) and store its digest
       npm run keys -- list                                          keys, tiers and limits (never the keys)
       npm run keys -- revoke <key id>                               the key stops working within a second

limits of the key's own (over its tier's, config keys.tiers):
  --budget-day <usd>  --budget-month <usd>  --rpm <requests/min>  --tpm <tokens/min>
  --default-policy <policy>  --allow <cascade:policy,model,...>  --usage own|all (what its ledger shows it)
The file is config keys.file (CASCADE_CONFIG picks the config); once it exists, the API requires a key.
`;

const { values, positionals } = parseCli(USAGE, {
  allowPositionals: true,
  options: {
    name: { type: 'string' },
    tier: { type: 'string' },
    'budget-day': { type: 'string' },
    'budget-month': { type: 'string' },
    rpm: { type: 'string' },
    tpm: { type: 'string' },
    'default-policy': { type: 'string' },
    allow: { type: 'string' },
    usage: { type: 'string' },
  },
});

const config = loadConfig();
const path = config.keysFilePath;
const [command, ...rest] = positionals;
const num = (v: string | undefined) => (v === undefined ? undefined : Number(v));

if (command === 'add') {
  if (!values.name) exitWithUsage(USAGE, 'add needs --name');
  const tier = values.tier ?? config.raw.keys.env_tier;
  if (!config.raw.keys.tiers[tier]) exitWithUsage(USAGE, `unknown tier "${tier}" (tiers: ${Object.keys(config.raw.keys.tiers).join(', ')})`);
  const raw = {
    ...((values['budget-day'] || values['budget-month']) && { budget_usd: { day: num(values['budget-day']), month: num(values['budget-month']) } }),
    ...((values.rpm || values.tpm) && { rate_limit: { requests_per_minute: num(values.rpm), tokens_per_minute: num(values.tpm) } }),
    ...(values['default-policy'] && { default_policy: values['default-policy'] }),
    ...(values.allow && { allow: values.allow.split(',').map((s) => s.trim()) }),
    ...(values.usage && { usage: values.usage }),
  };
  const limits = keyLimitsSchema.safeParse(JSON.parse(JSON.stringify(raw)));
  if (!limits.success) exitWithUsage(USAGE, `invalid limit ${limits.error.issues[0]!.path.join('.')}: ${limits.error.issues[0]!.message}`);
  const problems = keyLimitsProblems(config.raw, config.policies, limits.data, 'limits');
  if (problems.length > 0) exitWithUsage(USAGE, problems.join('\n'));
  const key = generateKey();
  const digest = sha256Hex(key);
  const file = readKeysFile(path);
  file.keys.push({
    id: keyIdOf(digest),
    sha256: digest,
    name: values.name,
    tier,
    ...(Object.keys(limits.data).length > 0 && { limits: limits.data }),
    created_at: new Date().toISOString(),
    revoked_at: null,
  });
  writeKeysFile(path, file);
  process.stdout.write(`${key}\n`);
  process.stderr.write(`added ${keyIdOf(digest)} (${values.name}, tier ${tier}) to ${path}; the key above is shown only this once\n`);
} else if (command === 'list') {
  const rows = readKeysFile(path).keys.map((k) => [k.id, k.name, k.tier, k.revoked_at ? `revoked ${k.revoked_at}` : 'active', JSON.stringify(k.limits ?? {})]);
  const table = [['id', 'name', 'tier', 'status', 'own limits'], ...rows];
  const widths = table[0]!.map((_, i) => Math.max(...table.map((r) => r[i]!.length)));
  for (const r of table) process.stdout.write(`${r.map((c, i) => c.padEnd(widths[i]!)).join('  ')}\n`);
} else if (command === 'revoke') {
  const id = rest[0];
  if (!id) exitWithUsage(USAGE, 'revoke needs a key id (npm run keys -- list)');
  const file = readKeysFile(path);
  const entry = file.keys.find((k) => k.id === id);
  if (!entry) exitWithUsage(USAGE, `no key ${id} in ${path}`);
  entry.revoked_at ??= new Date().toISOString();
  writeKeysFile(path, file);
  process.stderr.write(`revoked ${id} (${entry.name})\n`);
} else {
  exitWithUsage(USAGE, command ? `unknown command "${command}"` : 'a command is needed');
}
