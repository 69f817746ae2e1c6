import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { exportJWK, exportSPKI, generateKeyPair, SignJWT, UnsecuredJWT, type JWK, type JWTPayload, type CryptoKey } from "jose";
import { JwtVerifier } from "../../src/auth/jwt";
import { GatewayError } from "../../src/errors";

const SECRET = "jwt-test-secret-0123456789-abcdefghij";
const CLAIMS = { sub: "u1", tenant: "acme", roles: ["operator"], sites: ["s1"] };

async function refused(verifier: JwtVerifier, token: string): Promise<void> {
  await assert.rejects(verifier.verify(token), (error: unknown) => error instanceof GatewayError && error.code === "UNAUTHENTICATED");
}

const hs = (claims: JWTPayload = CLAIMS, alg = "HS256", secret = SECRET) =>
  new SignJWT(claims).setProtectedHeader({ alg }).setIssuedAt().setExpirationTime("5m").sign(new TextEncoder().encode(secret));

describe("JWT with a shared secret (HS256)", () => {
  const verifier = new JwtVerifier({ kind: "secret", secret: SECRET });

  it("accepts a valid token and takes sub, tenant, roles and sites from it", async () => {
    const principal = await verifier.verify(await hs());
    assert.deepEqual({ ...principal, expiresAt: undefined }, { kind: "user", id: "u1", tenant: "acme", roles: ["operator"], sites: ["s1"], expiresAt: undefined });
  });
  it("refuses alg none", async () => refused(verifier, new UnsecuredJWT(CLAIMS).setExpirationTime("5m").encode()));
  it("refuses another HMAC algorithm with the right secret (HS512)", async () => refused(verifier, await hs(CLAIMS, "HS512")));
  it("refuses a token signed with another secret", async () => refused(verifier, await hs(CLAIMS, "HS256", `${SECRET}x`)));
  it("refuses a token without exp", async () =>
    refused(verifier, await new SignJWT(CLAIMS).setProtectedHeader({ alg: "HS256" }).sign(new TextEncoder().encode(SECRET))));
  it("refuses a token expired longer ago than the 30 s tolerance", async () =>
    refused(verifier, await new SignJWT(CLAIMS).setProtectedHeader({ alg: "HS256" }).setExpirationTime(Math.floor(Date.now() / 1000) - 60).sign(new TextEncoder().encode(SECRET))));
  it("accepts a token expired within the tolerance (clock skew)", async () => {
    const token = await new SignJWT(CLAIMS).setProtectedHeader({ alg: "HS256" }).setExpirationTime(Math.floor(Date.now() / 1000) - 10).sign(new TextEncoder().encode(SECRET));
    assert.equal((await verifier.verify(token)).tenant, "acme");
  });
  it("refuses a token not valid yet (nbf beyond the tolerance)", async () =>
    refused(verifier, await new SignJWT(CLAIMS).setProtectedHeader({ alg: "HS256" }).setNotBefore("5m").setExpirationTime("10m").sign(new TextEncoder().encode(SECRET))));
  it("refuses tokens without tenant, without roles, or with an unknown role", async () => {
    await refused(verifier, await hs({ sub: "u1", roles: ["admin"] }));
    await refused(verifier, await hs({ sub: "u1", tenant: "acme" }));
    await refused(verifier, await hs({ sub: "u1", tenant: "acme", roles: ["root"] }));
    await refused(verifier, await hs({ sub: "u1", tenant: { $ne: null }, roles: ["admin"] }));
  });
  it("refuses a tampered payload", async () => {
    const [header, , signature] = (await hs()).split(".");
    const payload = Buffer.from(JSON.stringify({ ...CLAIMS, roles: ["admin"], exp: Math.floor(Date.now() / 1000) + 300 })).toString("base64url");
    await refused(verifier, `${header}.${payload}.${signature}`);
  });
});

describe("JWT against a JWKS (RS256, ES256) served over HTTP", () => {
  let server: Server;
  let url: string;
  let rsa: { privateKey: CryptoKey; publicKey: CryptoKey };
  let ec: { privateKey: CryptoKey; publicKey: CryptoKey };
  let rsaPublicJwk: JWK;
  const ISSUER = "https://idp.example";
  const AUDIENCE = "iot-gateway";

  before(async () => {
    rsa = await generateKeyPair("RS256");
    ec = await generateKeyPair("ES256");
    rsaPublicJwk = { ...(await exportJWK(rsa.publicKey)), kid: "rsa-1", alg: "RS256", use: "sig" };
    const keys = [rsaPublicJwk, { ...(await exportJWK(ec.publicKey)), kid: "ec-1", alg: "ES256", use: "sig" }];
    server = createServer((_req, res) => {
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify({ keys }));
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/.well-known/jwks.json`;
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  const verifier = () => new JwtVerifier({ kind: "jwks", url, issuer: ISSUER, audience: AUDIENCE });
  const sign = (key: CryptoKey | Uint8Array, header: { alg: string; kid?: string }, claims: JWTPayload = CLAIMS, issuer = ISSUER, audience = AUDIENCE) =>
    new SignJWT(claims).setProtectedHeader(header).setIssuer(issuer).setAudience(audience).setIssuedAt().setExpirationTime("5m").sign(key);

  it("accepts RS256 and ES256 tokens signed by the JWKS's keys", async () => {
    assert.equal((await verifier().verify(await sign(rsa.privateKey, { alg: "RS256", kid: "rsa-1" }))).id, "u1");
    assert.equal((await verifier().verify(await sign(ec.privateKey, { alg: "ES256", kid: "ec-1" }))).tenant, "acme");
  });
  it("refuses a wrong issuer or audience", async () => {
    await refused(verifier(), await sign(rsa.privateKey, { alg: "RS256", kid: "rsa-1" }, CLAIMS, "https://evil.example"));
    await refused(verifier(), await sign(rsa.privateKey, { alg: "RS256", kid: "rsa-1" }, CLAIMS, ISSUER, "another-api"));
  });
  it("refuses a key that is not in the JWKS, even under a known kid", async () => {
    const stranger = await generateKeyPair("RS256");
    await refused(verifier(), await sign(stranger.privateKey, { alg: "RS256", kid: "rsa-1" }));
    await refused(verifier(), await sign(stranger.privateKey, { alg: "RS256", kid: "unknown" }));
  });
  it("refuses HS256 signed with the public key as secret (algorithm confusion)", async () => {
    const pem = await exportSPKI(rsa.publicKey);
    await refused(verifier(), await sign(new TextEncoder().encode(pem), { alg: "HS256", kid: "rsa-1" }));
    await refused(verifier(), await sign(new TextEncoder().encode(JSON.stringify(rsaPublicJwk)), { alg: "HS256", kid: "rsa-1" }));
  });
  it("refuses alg none", async () =>
    refused(verifier(), new UnsecuredJWT(CLAIMS).setIssuer(ISSUER).setAudience(AUDIENCE).setExpirationTime("5m").encode()));
  it("refuses an expired RS256 token", async () =>
    refused(
      verifier(),
      await new SignJWT(CLAIMS)
        .setProtectedHeader({ alg: "RS256", kid: "rsa-1" })
        .setIssuer(ISSUER)
        .setAudience(AUDIENCE)
        .setExpirationTime(Math.floor(Date.now() / 1000) - 120)
        .sign(rsa.privateKey),
    ));
});
