/**
 * On the callback page of a popup login: hands the page's URL to the login that opened the
 * popup (`postMessage` to this origin only, or the flow's `BroadcastChannel` when
 * Cross-Origin-Opener-Policy cut the opener off), then closes the window. Needs no `init()`:
 * the wasm is not loaded. Throws an `EdgeOAuthError` with `code: "state_missing"` when the
 * opener is gone and the URL has no `state`.
 */
export function completePopupCallback(): void;
