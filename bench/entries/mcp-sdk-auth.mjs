// What a web MCP client uses from @modelcontextprotocol/sdk 1.x's client-side auth module
// (dist/esm/client/auth.js, imported through the package's "./*" export).
export {
  auth,
  discoverOAuthProtectedResourceMetadata,
  discoverAuthorizationServerMetadata,
  startAuthorization,
  exchangeAuthorization,
  refreshAuthorization,
  registerClient,
} from "@modelcontextprotocol/sdk/client/auth.js";
