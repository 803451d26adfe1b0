// Context row: mcp-client-auth.mjs without the DPoP helpers.
export {
  withOAuth,
  auth,
  discoverOAuthProtectedResourceMetadata,
  discoverAuthorizationServerMetadata,
  startAuthorization,
  exchangeAuthorization,
  refreshAuthorization,
  registerClient,
} from "@modelcontextprotocol/client";
