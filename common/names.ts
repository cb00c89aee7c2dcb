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
} as const;

/** `name=Type` pairs for `temporal server start-dev --search-attribute`. */
export const SEARCH_ATTRIBUTE_FLAGS: string[] = [
  'CascadeFinalStep=Int',
  'CascadeEscalations=Int',
  'CascadeCostUsd=Double',
  'CascadeFinalModel=Keyword',
  'CascadePolicy=Keyword',
];
