// Public surface of src/demo: the quick start (`portico demo`) and its demo upstreams.
export { EXAMPLE_FILE, runDemo } from './demo.ts';
export { startDevIssuer, startEchoService, type DevIssuer, type EchoService } from './upstreams.ts';
