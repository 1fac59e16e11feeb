// The fake Cloudflare API's Access for SaaS stand-in: every OIDC SaaS app is a client of its own
// `oidc-provider` at the app's issuer, `<base>/cdn-cgi/access/sso/oidc/<client_id>`, with the
// routes Access has (/authorization, /token, /jwks). Who "signs in" is the fake's current identity;
// the app's policies decide whether that address gets through, as Access does before it issues a
// code. No login form: an allowed identity is signed in and consents at once.
import { generateKeyPairSync, randomBytes } from "node:crypto";
import Provider from "oidc-provider";

export const ACCESS_PREFIX = "/cdn-cgi/access/sso/oidc/";

const signingKey = (() => {
  let jwk;
  return () => {
    if (!jwk) {
      const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
      jwk = { ...privateKey.export({ format: "jwk" }), kid: "fake-access", alg: "RS256", use: "sig" };
    }
    return jwk;
  };
})();

function ruleMatches(rule, email) {
  const address = (email ?? "").toLowerCase();
  if (rule.everyone) return true;
  if (rule.email) return address === String(rule.email.email ?? "").toLowerCase();
  if (rule.email_domain) {
    const domain = String(rule.email_domain.domain ?? "").toLowerCase().replace(/^@/, "");
    return address.endsWith(`@${domain}`);
  }
  return false;
}

/** Whether `email` gets through an app's policies (Access semantics for the rules we know). */
export function policiesAllow(policies, email) {
  if (!email) return false;
  const matches = (policy) =>
    (policy.include ?? []).some((r) => ruleMatches(r, email)) &&
    !(policy.exclude ?? []).some((r) => ruleMatches(r, email)) &&
    (policy.require ?? []).every((r) => ruleMatches(r, email));
  const ordered = [...policies].sort((a, b) => (a.precedence ?? 0) - (b.precedence ?? 0));
  for (const policy of ordered) {
    if (!matches(policy)) continue;
    return policy.decision === "allow" || policy.decision === "bypass";
  }
  return false;
}

const DENIED = `<!doctype html><html><head><title>Access denied</title></head><body><h1>Access denied</h1>
<p>You do not have access to this application. Your administrator's Access policy does not include your address.</p></body></html>`;

/**
 * One app's provider. `app()` returns the current app record (saas_app, policies) and
 * `identity()` the address that signs in; `events` collects {client_id, email, allowed}.
 */
export function accessProvider({ base, app, identity, events }) {
  const { client_id: clientId, client_secret: clientSecret, redirect_uris: redirectUris } = app().saas_app;
  const prefix = `${ACCESS_PREFIX}${clientId}`;
  const issuer = `${base}${prefix}`;
  const provider = new Provider(issuer, {
    clients: [{
      client_id: clientId,
      client_secret: clientSecret,
      redirect_uris: redirectUris,
      grant_types: ["authorization_code"],
      response_types: ["code"],
      token_endpoint_auth_method: "client_secret_basic",
      id_token_signed_response_alg: "RS256",
    }],
    jwks: { keys: [signingKey()] },
    routes: { authorization: "/authorization", token: "/token", jwks: "/jwks", userinfo: "/userinfo" },
    ttl: { Interaction: 600, Session: 3600, Grant: 3600, AccessToken: 600, IdToken: 600, AuthorizationCode: 60 },
    cookies: { keys: [randomBytes(16).toString("hex")] },
    claims: { openid: ["sub"], email: ["email", "email_verified"], profile: ["name"] },
    // Access for SaaS puts the email in the id_token itself, and vouches for it.
    conformIdTokenClaims: false,
    findAccount: async (_ctx, id) => ({
      accountId: id,
      claims: async () => ({ sub: id, email: id, email_verified: true, name: id.split("@")[0] }),
    }),
    features: { devInteractions: { enabled: false } },
    interactions: { url: (_ctx, interaction) => `${prefix}/interaction/${interaction.uid}` },
  });
  provider.on("server_error", (_ctx, err) => console.error("[fake access] server_error", err));
  const callback = provider.callback();

  async function interact(req, res) {
    try {
      const details = await provider.interactionDetails(req, res);
      const { prompt, params, session } = details;
      let result;
      if (prompt.name === "login") {
        const email = identity();
        const allowed = policiesAllow(app().policies, email);
        events.push({ client_id: clientId, email, allowed });
        if (!allowed) {
          res.writeHead(403, { "content-type": "text/html; charset=utf-8" });
          res.end(DENIED);
          return;
        }
        result = { login: { accountId: email } };
      } else {
        const grant = details.grantId
          ? await provider.Grant.find(details.grantId)
          : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
        const missing = prompt.details;
        if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(" "));
        if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
        for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) {
          grant.addResourceScope(indicator, scopes.join(" "));
        }
        result = { consent: { grantId: await grant.save() } };
      }
      await provider.interactionFinished(req, res, result, { mergeWithLastSubmission: true });
    } catch (err) {
      console.error("[fake access] interaction failed", err);
      res.writeHead(500, { "content-type": "text/plain" });
      res.end(String(err));
    }
  }

  return {
    issuer,
    /** Serve a request whose path starts with this app's prefix. */
    handle(req, res) {
      let rest = req.url.slice(prefix.length);
      if (!rest.startsWith("/")) rest = `/${rest}`;
      if (rest.startsWith("/interaction/")) return interact(req, res);
      // Mounted below a path, as Express does it: `originalUrl` keeps the prefix.
      req.originalUrl = req.url;
      req.url = rest;
      return callback(req, res);
    },
  };
}
