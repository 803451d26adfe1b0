// oidc-client-ts: the UserManager a browser app instantiates.
export { UserManager } from "oidc-client-ts";
