// Context row: the 2.x transport together with the auth exports of mcp-client-auth.mjs.
export * from "./mcp-client-auth.mjs";
export * from "./mcp-client-transport.mjs";
