/**
 * Names shared by clients, workers and workflows: task queues, workflow types, search attributes.
 * Pure module: imported by workflow code.
 */
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

export const poolTaskQueue = (pool: string): string => `cascade-pool-${pool}`;

export const SearchAttr = {
  FinalStep: defineSearchAttributeKey('CascadeFinalStep', SearchAttributeType.INT),
  Escalations: defineSearchAttributeKey('CascadeEscalations', SearchAttributeType.INT),
  CostUsd: defineSearchAttributeKey('CascadeCostUsd', SearchAttributeType.DOUBLE),
  FinalModel: defineSearchAttributeKey('CascadeFinalModel', SearchAttributeType.KEYWORD),
  Policy: defineSearchAttributeKey('CascadePolicy', SearchAttributeType.KEYWORD),
  /** Which API key asked (`key_<sha256 prefix>`, never the key), when keys are configured. */
  KeyId: defineSearchAttributeKey('CascadeKeyId', SearchAttributeType.KEYWORD),
  /** What the request says about each step of its ladder (workflows/learn.ts): the stats entity reads it. */
  Learn: defineSearchAttributeKey('CascadeLearn', SearchAttributeType.KEYWORD),
  /** Document jobs: the task, and chunks done / total. */
  DocumentTask: defineSearchAttributeKey('CascadeDocumentTask', SearchAttributeType.KEYWORD),
  // A Double although it counts: the dev server's SQLite visibility allows at most 3 Int attributes.
  DocumentChunksDone: defineSearchAttributeKey('CascadeDocumentChunksDone', SearchAttributeType.DOUBLE),
  DocumentChunksTotal: defineSearchAttributeKey('CascadeDocumentChunksTotal', SearchAttributeType.INT),
} as const;

/** `name=Type` pairs for `temporal server start-dev --search-attribute`. */
export const SEARCH_ATTRIBUTE_FLAGS: string[] = [
  'CascadeFinalStep=Int',
  'CascadeEscalations=Int',
  'CascadeCostUsd=Double',
  'CascadeFinalModel=Keyword',
  'CascadePolicy=Keyword',
  'CascadeKeyId=Keyword',
  'CascadeLearn=Keyword',
  'CascadeDocumentTask=Keyword',
  'CascadeDocumentChunksDone=Double',
  'CascadeDocumentChunksTotal=Int',
];
