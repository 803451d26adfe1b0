// Entry point of pages/mcp-sdk.js, the MCP SDK client bundled for the browser by e2e.mjs (esbuild).
export { Client } from '@modelcontextprotocol/sdk/client/index.js';
export { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
export { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
