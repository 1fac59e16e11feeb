// The upstream Cloudflare Access stand-in: the npm `oidc-provider` on a free loopback port with
// one static client (the Worker), RS256 id_tokens carrying `email` and `email_verified`, and no
// login form: every interaction signs in `access.email` and consents at once, as Access does for
// a signed-in user.
import http from "node:http";
import { generateKeyPairSync, randomBytes } from "node:crypto";
import Provider from "oidc-provider";

/**
 * Resolves to { issuer, clientId, clientSecret, email, vars, stop() }; `vars` are the Worker's
 * ACCESS_* settings pointing at this provider. `redirectUri` is the Worker's /callback.
 */
export async function startAccess({ redirectUri, email = "alice@example.com", authMethod = "client_secret_basic", emailVerified = true }) {
  let handler = (_req, res) => { res.writeHead(503); res.end(); };
  const server = http.createServer((req, res) => handler(req, res));
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const clientId = `access-${randomBytes(6).toString("hex")}`;
  const clientSecret = randomBytes(24).toString("hex");
  const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const jwk = { ...privateKey.export({ format: "jwk" }), kid: "access-test", alg: "RS256", use: "sig" };

  const access = { issuer, clientId, clientSecret, email, logins: 0, tokenRequests: 0 };
  const provider = new Provider(issuer, {
    clients: [{
      client_id: clientId,
      client_secret: clientSecret,
      redirect_uris: [redirectUri],
      grant_types: ["authorization_code"],
      response_types: ["code"],
      token_endpoint_auth_method: authMethod,
      id_token_signed_response_alg: "RS256",
    }],
    jwks: { keys: [jwk] },
    ttl: { Interaction: 600, Session: 3600, Grant: 3600, AccessToken: 600, IdToken: 600, AuthorizationCode: 60 },
    cookies: { keys: [randomBytes(16).toString("hex")] },
    claims: { openid: ["sub"], email: ["email", "email_verified"], profile: ["name"] },
    // Access for SaaS puts the email in the id_token itself.
    conformIdTokenClaims: false,
    findAccount: async (_ctx, id) => ({
      accountId: id,
      // Access for SaaS vouches for the address (`email_verified: true`), which the Worker
      // requires; `emailVerified: false` plays a provider that leaves the claim out.
      claims: async () => ({ sub: id, email: id, ...(emailVerified ? { email_verified: true } : {}), name: id.split("@")[0] }),
    }),
    features: { devInteractions: { enabled: false } },
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
  });
  provider.on("server_error", (_ctx, err) => console.error("[access] server_error", err));
  provider.on("grant.success", () => { access.tokenRequests += 1; });
  const callback = provider.callback();

  async function interact(req, res) {
    try {
      const details = await provider.interactionDetails(req, res);
      const { prompt, params, session } = details;
      let result;
      if (prompt.name === "login") {
        access.logins += 1;
        result = { login: { accountId: access.email } };
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
      console.error("[access] interaction failed", err);
      res.writeHead(500);
      res.end(String(err));
    }
  }

  handler = (req, res) => (req.url.startsWith("/interaction/") ? interact(req, res) : callback(req, res));
  access.vars = {
    ACCESS_CLIENT_ID: clientId,
    ACCESS_CLIENT_SECRET: clientSecret,
    ACCESS_ISSUER: issuer,
    ACCESS_AUTHORIZATION_URL: `${issuer}/auth`,
    ACCESS_TOKEN_URL: `${issuer}/token`,
    ACCESS_JWKS_URL: `${issuer}/jwks`,
  };
  access.stop = () => new Promise((resolve) => { server.closeAllConnections(); server.close(resolve); });
  return access;
}
