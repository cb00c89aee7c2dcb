/**
 * Makes sure the project's custom search attributes exist on a Temporal server. The dev server's
 * `--search-attribute` flags only register attributes when it creates a new persistence file: an
 * attribute added to the project later would be silently missing after a restart with an existing
 * file (checked with CLI 1.9.1), so `npm start` adds whatever is missing through the operator API.
 */
import { Connection } from '@temporalio/client';
import { SEARCH_ATTRIBUTE_FLAGS } from '../../common/names.js';

/** temporal.api.enums.v1.IndexedValueType, for the types the flags use. */
const INDEXED_VALUE_TYPE: Record<string, number> = { Text: 1, Keyword: 2, Int: 3, Double: 4, Bool: 5, Datetime: 6, KeywordList: 7 };

/** Adds the missing attributes; returns their names (empty when all were registered already). */
export async function ensureSearchAttributes(address: string, namespace: string): Promise<string[]> {
  const connection = await Connection.connect({ address, connectTimeout: 5000 });
  try {
    const existing = await connection.operatorService.listSearchAttributes({ namespace });
    const known = new Set([...Object.keys(existing.customAttributes ?? {}), ...Object.keys(existing.systemAttributes ?? {})]);
    const missing: Record<string, number> = {};
    for (const flag of SEARCH_ATTRIBUTE_FLAGS) {
      const [name, type] = flag.split('=') as [string, string];
      const indexed = INDEXED_VALUE_TYPE[type];
      if (indexed === undefined) throw new Error(`search attribute ${name}: unknown type ${type}`);
      if (!known.has(name)) missing[name] = indexed;
    }
    if (Object.keys(missing).length > 0) await connection.operatorService.addSearchAttributes({ namespace, searchAttributes: missing });
    return Object.keys(missing);
  } finally {
    await connection.close();
  }
}
