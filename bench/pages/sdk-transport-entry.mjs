// Entry of /sdk-transport.js: the MCP SDK 1.x client and its Streamable HTTP transport, loaded only
// by the transport variant of the concurrency burst (bench/browser.mjs).
export { Client } from '@modelcontextprotocol/sdk/client/index.js';
export { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
