// The callback page of a popup login: hands the page's URL to the login that opened the popup,
// then closes the window. Plain JS, no wasm: the popup loads this file alone (a few hundred
// bytes) instead of the package, and the package re-exports it as `completePopupCallback`.
//
// The URL goes to the opener by `postMessage` to this page's own origin only. When the opener is
// gone (a Cross-Origin-Opener-Policy on the authorization server's pages cuts it off), it goes
// over the `BroadcastChannel` named after the flow's `state`, which only a login waiting for that
// `state` listens to. The login checks the message's `state` either way; this page checks nothing
// the login does not check again, and renders nothing.

/** The message type the login waits for (crates/browser/src/authorizer.rs `CALLBACK_MESSAGE`). */
const MESSAGE = 'edge-oauth-callback';

export function completePopupCallback() {
  const url = location.href;
  const message = { type: MESSAGE, url };
  const opener = window.opener;
  if (opener) {
    opener.postMessage(message, location.origin);
  } else {
    const state = new URL(url).searchParams.get('state');
    if (!state) {
      // The core's `state_missing` (crates/core/src/error.rs), as the package throws it.
      const e = new Error('callback has no state parameter');
      e.name = 'EdgeOAuthError';
      e.code = 'state_missing';
      e.recovery = 'refused';
      throw e;
    }
    // Named as in crates/browser/src/authorizer.rs `channel_name`.
    const channel = new BroadcastChannel(`${MESSAGE}/${state}`);
    channel.postMessage(message);
    channel.close();
  }
  window.close();
}
