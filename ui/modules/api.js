// The API client and sign-in: every call to /api goes through `api()`, which adds the access token
// when Entra ID sign-in is on. MSAL.js is loaded from vendor/ only in that case.
// Must never insert anything from a response into the page: that is the views' job, as text.

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

const auth = { config: { enabled: false }, msal: null, account: null };

async function accessToken() {
  if (!auth.config.enabled || !auth.msal || !auth.account) return null;
  const request = { scopes: auth.config.scopes, account: auth.account };
  try {
    return (await auth.msal.acquireTokenSilent(request)).accessToken;
  } catch (error) {
    if (error instanceof window.msal.InteractionRequiredAuthError) {
      await auth.msal.acquireTokenRedirect(request);
    }
    throw error;
  }
}

async function send(path, options = {}) {
  const headers = { Accept: options.accept || "application/json", ...(options.headers || {}) };
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  const token = await accessToken();
  if (token) headers.Authorization = "Bearer " + token;
  const response = await fetch(path, {
    method: options.method || "GET",
    headers,
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
    signal: options.signal,
  });
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    throw new ApiError(response.status, problemText(body) || `HTTP ${response.status}`);
  }
  return response;
}

// problem+json (RFC 9457): `detail` says what was wrong, naming the parameter.
function problemText(body) {
  return body.detail || body.title || "";
}

/** JSON from the API, or an ApiError carrying the status and the problem's words. */
export async function api(path, options = {}) {
  const response = await send(path, options);
  return response.json();
}

/** Save what `path` answers as a file: fetched with the token (a plain link would carry none). */
export async function download(path, filename, accept) {
  const response = await send(path, { accept });
  const blob = await response.blob();
  const url = URL.createObjectURL(blob);
  const link = document.createElement("a");
  link.href = url;
  link.download = filename;
  document.body.appendChild(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
  return response;
}

/** A view that is not deployed on this server (no alerter, no collector) answers 404/405. */
export function notAvailable(error) {
  return error instanceof ApiError && (error.status === 404 || error.status === 405);
}

export { ApiError };

function loadScript(src) {
  return new Promise((resolve, reject) => {
    const script = document.createElement("script");
    script.src = src;
    script.onload = resolve;
    script.onerror = () => reject(new Error("could not load " + src));
    document.head.appendChild(script);
  });
}

/** Sets up sign-in from /api/config/auth. Returns the signed-in user's name, "" with sign-in off,
 * or null when sign-in is on and nobody is signed in (the UI then loads no data). */
export async function setUpAuth() {
  auth.config = await api("/api/config/auth");
  if (!auth.config.enabled) return "";
  await loadScript("vendor/msal-browser.min.js");
  auth.msal = new window.msal.PublicClientApplication({
    auth: {
      clientId: auth.config.client_id,
      authority: auth.config.authority,
      knownAuthorities: [new URL(auth.config.authority).host],
      redirectUri: window.location.origin + "/",
      postLogoutRedirectUri: window.location.origin + "/",
    },
    cache: { cacheLocation: "sessionStorage" },
  });
  await auth.msal.initialize();
  const result = await auth.msal.handleRedirectPromise();
  auth.account = result ? result.account : auth.msal.getAllAccounts()[0] || null;
  if (auth.account) auth.msal.setActiveAccount(auth.account);
  return auth.account ? auth.account.username : null;
}

export async function signIn() {
  await auth.msal.loginRedirect({ scopes: auth.config.scopes });
}

export async function signOut() {
  await auth.msal.logoutRedirect({ account: auth.account });
}

let featureFlags = null;

/** Which optional features are on (/api/config/features), asked once per page load. */
export async function features() {
  if (!featureFlags) {
    featureFlags = api("/api/config/features").catch(() => ({ ai: false, periodic_fetch: false, fetch_interval_minutes: null }));
  }
  return featureFlags;
}
