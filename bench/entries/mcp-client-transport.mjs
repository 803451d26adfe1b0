// Context row: the Streamable HTTP client transport of @modelcontextprotocol/client 2.x alone.
export { StreamableHTTPClientTransport } from "@modelcontextprotocol/client";
