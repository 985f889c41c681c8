// A real OpenID Connect provider for the tests (oidc-provider, a certified implementation) with the demo staff of
// staff.json and their assignments (medarbetaruppdrag). Started by tests/oidc/provider.py:
//
//   OIDC_TLS_CERT=server.pem OIDC_TLS_KEY=server.key node tests/oidc/provider.mjs
//
// It listens on 127.0.0.1 on a free port over HTTPS and prints one line of JSON, {"issuer": "https://..."}, when
// ready. Clients:
//   npo-staff   the staff page (confidential, authorization code + PKCE); its redirect URI is
//               https://127.0.0.1:<any port>/auth/callback, because each test server takes a free port
//   npo-machine a machine client (public, native, PKCE); its access tokens are JWTs for the API's audience
//   npo-short   as npo-machine, but its access tokens expire after 2 seconds (the expired-token test)
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { createServer } from "node:https";

import Provider, { errors } from "oidc-provider";

const STAFF = JSON.parse(readFileSync(new URL("./staff.json", import.meta.url), "utf8"));
delete STAFF._comment;
export const API_AUDIENCE = "urn:npo-adapter:staff-api";
const STAFF_CLIENT_SECRET = process.env.OIDC_STAFF_SECRET || "npo-staff-secret-for-tests-only";

const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: "jwk" }), kid: randomBytes(8).toString("hex"), use: "sig",
  alg: "RS256" };

const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function claimsOf(login) {
  const s = STAFF[login];
  return { sub: login, name: s.name, hsa_id: s.hsa_id, medarbetaruppdrag: s.medarbetaruppdrag };
}

const configuration = {
  clients: [
    { client_id: "npo-staff", client_secret: STAFF_CLIENT_SECRET, redirect_uris: ["https://127.0.0.1/auth/callback"],
      post_logout_redirect_uris: ["https://127.0.0.1/"], grant_types: ["authorization_code"],
      response_types: ["code"], token_endpoint_auth_method: "client_secret_basic" },
    ...["npo-machine", "npo-short"].map((id) => ({
      client_id: id, application_type: "native", token_endpoint_auth_method: "none",
      redirect_uris: ["http://127.0.0.1/callback"], grant_types: ["authorization_code"], response_types: ["code"] })),
  ],
  jwks: { keys: [signingKey] },
  cookies: { keys: [randomBytes(32).toString("hex")] },
  pkce: { required: () => true },
  scopes: ["openid", "profile", "hsa", "overview"],
  claims: { openid: ["sub"], profile: ["name"], hsa: ["hsa_id", "medarbetaruppdrag"] },
  findAccount: (_ctx, id) => (STAFF[id] ? { accountId: id, claims: () => claimsOf(id) } : undefined),
  features: {
    devInteractions: { enabled: false },
    rpInitiatedLogout: {
      enabled: true,  // the default pages load a web font: these load nothing
      logoutSource: (ctx, form) => { ctx.body = `<!doctype html><html lang="sv"><head><meta charset="utf-8">
<title>Logga ut</title></head><body><h1>Logga ut från ${esc(ctx.host)}?</h1>${form}
<button autofocus type="submit" form="op.logoutForm" value="yes" name="logout">Yes, sign me out</button>
<button type="submit" form="op.logoutForm">No, stay signed in</button></body></html>`; },
      postLogoutSuccessSource: (ctx) => { ctx.body = "<!doctype html><title>Utloggad</title><p>Du är utloggad.</p>"; },
    },
    resourceIndicators: {
      enabled: true,
      defaultResource: (_ctx, client, oneOf) => oneOf ?? (client.clientId === "npo-staff" ? undefined : API_AUDIENCE),
      useGrantedResource: () => true,
      getResourceServerInfo: (_ctx, indicator, client) => {
        if (indicator !== API_AUDIENCE) throw new errors.InvalidTarget();
        return { scope: "overview", audience: API_AUDIENCE, accessTokenFormat: "jwt",
          accessTokenTTL: client.clientId === "npo-short" ? 2 : 600, jwt: { sign: { alg: "RS256" } } };
      },
    },
  },
  // the API needs to know who the user is: the staff claims go into the API's JWT access tokens
  extraTokenClaims: (_ctx, token) => (token.kind === "AccessToken" && token.resourceServer && STAFF[token.accountId]
    ? claimsOf(token.accountId) : undefined),
  ttl: { AccessToken: (_ctx, token) => token.resourceServer?.accessTokenTTL || 600, IdToken: 600, Interaction: 600,
    Session: 3600, Grant: 3600, AuthorizationCode: 60 },
  renderError: (ctx, out) => { ctx.type = "text/plain"; ctx.body = `error: ${out.error}`; },
};


function loginPage(uid, problem) {
  return `<!doctype html><html lang="sv"><head><meta charset="utf-8"><title>Inloggning – Region Exempel</title></head>
<body><h1>Logga in</h1>${problem ? `<p role="alert">${esc(problem)}</p>` : ""}
<form method="post" action="/interaction/${esc(uid)}/login">
<label>Användarnamn <input name="login" autocomplete="username" required></label>
<label>Lösenord <input name="password" type="password" autocomplete="current-password" required></label>
<button type="submit">Logga in</button></form></body></html>`;
}

async function formBody(req) {
  let raw = "";
  for await (const chunk of req) raw += chunk;
  return new URLSearchParams(raw);
}

async function interaction(provider, req, res) {
  const details = await provider.interactionDetails(req, res);
  if (details.prompt.name === "consent") {  // the hospital's own applications: consent without a screen
    const { missingOIDCScope, missingOIDCClaims, missingResourceScopes } = details.prompt.details;
    const grant = details.grantId ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: details.session.accountId, clientId: details.params.client_id });
    if (missingOIDCScope) grant.addOIDCScope(missingOIDCScope.join(" "));
    if (missingOIDCClaims) grant.addOIDCClaims(missingOIDCClaims);
    for (const [indicator, scopes] of Object.entries(missingResourceScopes || {})) {
      grant.addResourceScope(indicator, scopes.join(" "));
    }
    await provider.interactionFinished(req, res, { consent: { grantId: await grant.save() } },
      { mergeWithLastSubmission: true });
    return;
  }
  if (req.method === "GET") {
    res.writeHead(200, { "content-type": "text/html; charset=utf-8" }).end(loginPage(details.uid));
    return;
  }
  const form = await formBody(req);
  const login = form.get("login") || "";
  const known = Object.hasOwn(STAFF, login) && STAFF[login].password === form.get("password");
  if (!known) {
    res.writeHead(200, { "content-type": "text/html; charset=utf-8" }).end(loginPage(details.uid, "Fel användarnamn eller lösenord."));
    return;
  }
  await provider.interactionFinished(req, res, { login: { accountId: login } }, { mergeWithLastSubmission: false });
}

const server = createServer({ cert: readFileSync(process.env.OIDC_TLS_CERT), key: readFileSync(process.env.OIDC_TLS_KEY) });
server.listen(0, "127.0.0.1", () => {
  const issuer = `https://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, configuration);
  // each test UI listens on a free port: the staff client's callback is allowed on any port of 127.0.0.1
  const allowed = provider.Client.prototype.redirectUriAllowed;
  provider.Client.prototype.redirectUriAllowed = function (uri) {
    return allowed.call(this, uri)
      || (this.clientId === "npo-staff" && /^https:\/\/127\.0\.0\.1:\d+\/auth\/callback$/.test(uri));
  };
  const allowedLogout = provider.Client.prototype.postLogoutRedirectUriAllowed;
  provider.Client.prototype.postLogoutRedirectUriAllowed = function (uri) {
    return allowedLogout.call(this, uri) || (this.clientId === "npo-staff" && /^https:\/\/127\.0\.0\.1:\d+\/$/.test(uri));
  };
  const callback = provider.callback();
  server.on("request", (req, res) => {
    if (req.url.startsWith("/interaction/")) {
      interaction(provider, req, res).catch((err) => {
        res.writeHead(400, { "content-type": "text/plain" }).end(`interaction failed: ${err.name}`);
      });
    } else {
      callback(req, res);
    }
  });
  process.stdout.write(JSON.stringify({ issuer }) + "\n");
});
process.on("SIGTERM", () => server.close(() => process.exit(0)));
