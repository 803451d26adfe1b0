// The callback page of popup and redirect logins. Popup: hands the URL to the opener (or over
// the flow's BroadcastChannel when Cross-Origin-Opener-Policy cut it off). Redirect: validates,
// exchanges the code, and goes back to the app. Errors are shown as text only. The popup's
// branch loads popup-callback.js alone: no package glue, no wasm.
import type { EdgeOAuthPageOptions } from 'edge-oauth';
import { completePopupCallback } from 'edge-oauth/popup-callback.js';
import { BACK_FROM_SIGN_IN, describeError, loadConfig, loadSaved, optionsFor } from './settings.js';

const title = document.getElementById('title')!;
const message = document.getElementById('message')!;
const remedy = document.getElementById('remedy')!;

try {
  const saved = loadSaved();
  if (saved.mode === 'redirect') {
    // Only the redirect's callback needs the package (and its wasm).
    const { default: init, handleRedirectCallback } = await import('edge-oauth');
    await init();
    const options = optionsFor('redirect', saved.serverUrl || '', await loadConfig()) as EdgeOAuthPageOptions;
    const { returnTo } = await handleRedirectCallback(options);
    title.textContent = 'Signed in';
    sessionStorage.setItem(BACK_FROM_SIGN_IN, String(Date.now()));
    location.replace(returnTo);
  } else {
    completePopupCallback();
    title.textContent = 'Signed in';
    message.textContent = 'You can close this window.';
  }
} catch (e) {
  const shown = describeError(e);
  document.title = 'edge-oauth · sign-in failed';
  title.textContent = `Sign-in failed: ${shown.code}`;
  message.textContent = shown.message;
  remedy.textContent = shown.remedy;
}
