// Context row: the 1.x transport together with the auth functions of mcp-sdk-auth.mjs, to show
// what the auth entry adds to an app that already ships the transport.
export * from "./mcp-sdk-auth.mjs";
export * from "./mcp-sdk-transport.mjs";
