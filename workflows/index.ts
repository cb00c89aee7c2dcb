/** Every workflow type the router worker runs. */
export { cascadeWorkflow } from './cascade.js';
export { documentWorkflow } from './document.js';
export { learnWorkflow } from './learn-workflow.js';
export { feedbackWorkflow } from './feedback-workflow.js';
export { keyBudgetWorkflow } from './key-budget.js';
