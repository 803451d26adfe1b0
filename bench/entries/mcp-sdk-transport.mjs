// Context row: the Streamable HTTP client transport of @modelcontextprotocol/sdk 1.x alone.
// It imports client/auth.js itself, so the auth module is already inside this bundle.
export { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
