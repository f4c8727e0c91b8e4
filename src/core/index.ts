export * from './errors.js';
export * from './units.js';
export * from './ids.js';
export * from './mac.js';
export * from './vm-config.js';
export * from './schema-errors.js';
export * from './vm-state.js';
export * from './vm-requests.js';
