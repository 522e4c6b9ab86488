export * from './ed25519.js';
export * from './envelope.js';
export * from './errors.js';
export * from './keys.js';
export * from './root.js';
export * from './merkle.js';
export * from './checkpoint.js';
