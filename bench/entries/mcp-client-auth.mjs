// What a web MCP client uses from @modelcontextprotocol/client 2.x's auth exports: the fetch
// middleware, the flow functions, and the DPoP helpers (all exported from the package root).
export {
  withOAuth,
  auth,
  discoverOAuthProtectedResourceMetadata,
  discoverAuthorizationServerMetadata,
  startAuthorization,
  exchangeAuthorization,
  refreshAuthorization,
  registerClient,
  DpopSession,
  generateDpopKeyPair,
  withDpop,
  withDpopFromProvider,
  isDpopNonceChallenge,
} from "@modelcontextprotocol/client";
