/** Every workflow type the router worker runs. */
export { cascadeWorkflow } from './cascade.js';
export { documentWorkflow } from './document.js';
export { keyBudgetWorkflow } from './key-budget.js';
